"""Checkpoints keep every CUDA generator; train.deterministic sets the switches that make CUDA repeat."""

import os

import pytest
import torch

from ranklist.training import Trainer, load_config
from ranklist.training.determinism import make_deterministic
from ranklist.training.run import build_run
from ranklist.training.state import rng_state, set_rng_state

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture
def restored_switches(monkeypatch):
    """The process-wide switches as they were, after the test."""
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    yield
    torch.use_deterministic_algorithms(before[0])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before[1:]


def test_checkpoint_rng_holds_every_cuda_generator(monkeypatch):
    """Faked CUDA with two devices: both generators are saved, and restored on the devices there are."""
    states = [torch.full((8,), 1, dtype=torch.uint8), torch.full((8,), 2, dtype=torch.uint8)]
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: states)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device: restored.append((device, int(state[0]))))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    saved = rng_state()
    assert saved["cuda"] == states
    set_rng_state(saved)
    assert restored == [(0, 1), (1, 2)]
    restored.clear()
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)  # resumed where there is one device
    set_rng_state(saved)
    assert restored == [(0, 1)]
    set_rng_state({k: v for k, v in saved.items() if k != "cuda"})  # a checkpoint from before: CPU states only


@needs_cuda
def test_cuda_generators_resume():
    saved = rng_state()
    want = torch.rand(4, device="cuda")
    set_rng_state(saved)
    assert torch.equal(torch.rand(4, device="cuda"), want)


def test_deterministic_sets_the_switches(tiny_recipe, restored_switches):
    build_run(load_config(tiny_recipe, ["train.deterministic=true"]))
    assert (
        torch.are_deterministic_algorithms_enabled()
        and torch.backends.cudnn.deterministic
        and not torch.backends.cudnn.benchmark
    )
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"


def test_deterministic_refuses_a_nondeterministic_cublas_setting(monkeypatch, restored_switches):
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":0:0")
    with pytest.raises(ValueError, match="CUBLAS_WORKSPACE_CONFIG .* got ':0:0'"):
        make_deterministic()


@pytest.mark.heavy
def test_a_deterministic_cpu_run_equals_the_plain_one(tiny_recipe, tmp_path, restored_switches):
    """Every op of a training run has a deterministic CPU kernel (none refuses), and the CPU's were
    deterministic already."""
    overrides = ["train.iterations=2", "eval.nmi=false"]
    for name, extra in (("plain", []), ("deterministic", ["train.deterministic=true"])):
        Trainer(
            load_config(tiny_recipe, [*overrides, *extra]), tmp_path / name, progress=False, log=lambda m: None
        ).run()
    a, b = (
        torch.load(tmp_path / name / "checkpoints/last.pt", weights_only=False)["model_state"]
        for name in ("plain", "deterministic")
    )
    assert all(torch.equal(a[key], b[key]) for key in a)


@pytest.mark.heavy
@needs_cuda
def test_cuda_resume_is_bit_for_bit_with_deterministic(tiny_recipe, tmp_path, restored_switches):
    """EfficientNet-Lite's drop-connect draws from the CUDA generator; deterministic kernels do the rest."""
    overrides = [
        "train.device=cuda",
        "train.deterministic=true",
        "model.backbone=efficientnet_lite0",
        "model.pretrained=false",
        "data.image_size=32",
        "data.resize=36",
        "eval.nmi=false",
    ]
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
    a, b = (
        torch.load(tmp_path / name / "checkpoints/last.pt", weights_only=False)["model_state"]
        for name in ("straight", "split")
    )
    assert all(torch.equal(a[key], b[key]) for key in a)
