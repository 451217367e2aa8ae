"""Which device each process trains on (train.device under torchrun), decided without a GPU."""

import pytest

from ranklist.training.config import ConfigError
from ranklist.training.distributed import local_rank
from ranklist.training.preflight import process_device


@pytest.mark.parametrize(
    "name,world,rank,want",
    [
        ("cuda", 2, 1, "cuda:1"),  # torchrun: each process its node's GPU LOCAL_RANK
        ("cuda", 4, 3, "cuda:3"),
        ("cuda", 1, 0, "cuda"),  # one process: as given
        ("cuda:1", 1, 0, "cuda:1"),
        ("cpu", 2, 1, "cpu"),
        ("not a device", 2, 1, "not a device"),  # left for resolve_device to name
    ],
)
def test_process_device(name, world, rank, want):
    assert process_device(name, world, rank) == want


def test_a_numbered_gpu_under_torchrun_is_refused_by_name():
    with pytest.raises(
        ConfigError, match="train.device 'cuda:0' would put all 2 processes on one GPU; use train.device=cuda"
    ):
        process_device("cuda:0", 2, 1)


def test_local_rank_from_torchrun(monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert local_rank() == 3
    monkeypatch.delenv("LOCAL_RANK")
    assert local_rank(1) == 1
