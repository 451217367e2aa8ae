"""One training DataLoader for the whole run; resuming mid-run is exact with and without workers."""

import json

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from ranklist.data.samplers import ClassBalancedBatchSampler, RunBatches, SeededItems
from ranklist.training import Trainer, load_config


def _model_state(folder):
    return torch.load(folder / "checkpoints/last.pt", weights_only=False)["model_state"]


def _log(folder):  # everything but the wall-clock times
    return [
        {k: v for k, v in json.loads(x).items() if k != "time_s"}
        for x in (folder / "metrics.jsonl").read_text().splitlines()
    ]


@pytest.mark.heavy
@pytest.mark.parametrize("workers", [0, 2])
def test_resume_mid_run_equals_the_straight_run(tiny_recipe, tmp_path, workers):
    """6 iterations over epochs of 2 batches, stopped after 3 (mid-epoch) and resumed."""
    overrides = [
        f"data.num_workers={workers}",
        "eval.nmi=false",
        "data.val_fraction=0",
    ]  # 5 training classes: 2 batches an epoch
    Trainer(load_config(tiny_recipe, overrides), tmp_path / "straight", progress=False, log=lambda m: None).run()
    Trainer(
        load_config(tiny_recipe, [*overrides, "train.iterations=3"]),
        tmp_path / "split",
        progress=False,
        log=lambda m: None,
    ).run()
    Trainer(load_config(tiny_recipe, overrides), tmp_path / "split", progress=False, log=lambda m: None).run(
        resume=True
    )
    a, b = _model_state(tmp_path / "straight"), _model_state(tmp_path / "split")
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert _log(tmp_path / "split") == _log(tmp_path / "straight")


@pytest.mark.heavy
def test_one_loader_for_the_whole_run(tiny_recipe, tmp_path, monkeypatch):
    from ranklist.training import loader

    made = []
    monkeypatch.setattr(loader, "DataLoader", lambda *a, **kw: made.append(kw) or DataLoader(*a, **kw))
    Trainer(load_config(tiny_recipe, ["eval.nmi=false"]), tmp_path / "run", progress=False, log=lambda m: None).run()
    assert len(made) == 1  # 6 iterations, 3 epochs


class _Draws(Dataset):
    """Each item: a draw from torch's, numpy's and Python's generators (what augmentations use)."""

    def __len__(self):
        return 24

    def __getitem__(self, index):
        import random

        return torch.tensor([float(torch.rand(())), float(np.random.rand()), random.random()])


def _first_batches(workers: int, epoch: int = 0, batch: int = 0, n: int = 6):
    sampler = ClassBalancedBatchSampler(np.arange(24) % 8, 2, 3, seed=5)
    loader = DataLoader(
        SeededItems(_Draws()),
        batch_sampler=RunBatches(sampler, epoch, batch),
        num_workers=workers,
        generator=torch.Generator().manual_seed(0),
    )
    batches = iter(loader)
    return [next(batches) for _ in range(n)]


def test_worker_draws_follow_the_batch_not_the_worker():
    """2 or 3 workers, or a loader started at batch 3: the same draws for the same batch."""
    two, three = _first_batches(2), _first_batches(3)
    resumed = _first_batches(2, epoch=1, batch=0, n=3)  # 4 batches an epoch: batch 4 is epoch 1's first
    for a, b in zip(two, three):
        assert torch.equal(a, b)
    for a, b in zip(two[4:], resumed):
        assert torch.equal(a, b)
    assert not torch.equal(two[0], two[1])


def test_run_batches_cross_epochs_and_skip_a_finished_one():
    sampler = ClassBalancedBatchSampler(np.arange(24) % 8, 2, 3, seed=5)
    batches = iter(RunBatches(sampler, epoch=0, batch=len(sampler)))  # a checkpoint at the end of epoch 0
    assert [list(next(batches)) for _ in range(5)] == [
        sampler.batch(e, b) for e, b in ((1, 0), (1, 1), (1, 2), (1, 3), (2, 0))
    ]


def _loader_for(device: str):
    from types import SimpleNamespace

    from ranklist.training.loader import training_loader

    labels = np.arange(24) % 8
    run = SimpleNamespace(
        config=SimpleNamespace(data=SimpleNamespace(num_workers=0), train=SimpleNamespace(seed=0)),
        splits=SimpleNamespace(train=_Draws()),
        sampler=ClassBalancedBatchSampler(labels, 2, 3),
        device=torch.device(device),
    )
    return training_loader(run, SimpleNamespace(epoch=0, batch=0))


def test_batches_are_pinned_for_cuda_only():
    assert _loader_for("cuda").pin_memory and not _loader_for("cpu").pin_memory


@pytest.mark.heavy
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_cuda_run_with_pinned_batches_and_workers(tiny_recipe, tmp_path):
    summary = Trainer(
        load_config(tiny_recipe, ["train.device=cuda", "data.num_workers=2", "eval.nmi=false", "train.iterations=3"]),
        tmp_path / "run",
        progress=False,
        log=lambda m: None,
    ).run()
    assert summary["iterations"] == 3 and summary["hardware"]["device"].startswith("cuda")
