"""A run with cross-batch memory resumes bit for bit (issue 24 item 9, issue 28 item 5)."""

import pytest
import torch

from ranklist.training import Trainer, load_config

pytestmark = pytest.mark.heavy  # training runs

MEMORY = ["loss.memory_size=10", "loss.memory_warmup=1"]


def _train(recipe, out, overrides, resume=False):
    Trainer(load_config(recipe, MEMORY + overrides), out, progress=False, log=lambda m: None).run(resume=resume)
    return torch.load(out / "checkpoints/last.pt", weights_only=False)


def test_a_run_with_cross_batch_memory_resumes_bit_for_bit(tiny_recipe, tmp_path):
    straight = _train(tiny_recipe, tmp_path / "straight", [])
    _train(tiny_recipe, tmp_path / "split", ["train.iterations=3"])
    resumed = _train(tiny_recipe, tmp_path / "split", [], resume=True)
    assert straight["step"] == resumed["step"] == 6
    for key, value in straight["model_state"].items():
        assert torch.equal(value, resumed["model_state"][key]), key
    memory = {k: v for k, v in straight["loss_state"].items() if k.split(".")[-1] in ("embeddings", "labels", "state")}
    assert memory and all(v.numel() for v in memory.values())  # the memory was used and is saved
    assert straight["loss_state"].keys() == resumed["loss_state"].keys()
    for key, value in straight["loss_state"].items():
        assert torch.equal(value, resumed["loss_state"][key]), key
