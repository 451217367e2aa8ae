"""--device of evaluate, embed and index, and scoring on the embedding GPU."""

import pytest
import torch

from ranklist.cli import main
from ranklist.evaluation import Embedded, Evaluator
from ranklist.evaluation.evaluator import scoring_device


def test_scoring_follows_a_cuda_device_only():
    assert scoring_device("cuda:1") == torch.device("cuda:1") and scoring_device(torch.device("cuda")) == torch.device(
        "cuda"
    )
    assert scoring_device("cpu") == torch.device("cpu") and scoring_device("mps") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
@pytest.mark.parametrize(
    "argv",
    [
        ["evaluate", "missing.pt", "--dataset", "emoji", "--device", "cuda"],
        ["embed", "missing.pt", "--dataset", "emoji", "--out", "e.npz", "--device", "cuda"],
        ["index", "--checkpoint", "missing.pt", "--dataset", "emoji", "--out", "idx", "--device", "cuda"],
    ],
)
def test_device_without_cuda_is_one_line(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "--device is 'cuda' but this machine has no usable CUDA device" in err and "\n" not in err


def test_a_bad_device_name_is_one_line(capsys):
    assert main(["evaluate", "missing.pt", "--dataset", "emoji", "--device", "gpu0"]) == 2
    assert "--device 'gpu0' is not a device name" in capsys.readouterr().err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_metrics_scored_on_cuda_equal_the_cpu_ones():
    g = torch.Generator().manual_seed(0)
    outputs = {"L": torch.randn(300, 16, generator=g), "H": torch.randn(300, 8, generator=g)}
    labels = torch.arange(300) % 30
    cpu = Evaluator(progress=False, compute_nmi=False).score(Embedded(outputs, labels))
    cuda = Evaluator(device="cuda", progress=False, compute_nmi=False).score(Embedded(outputs, labels))
    for view in cpu:
        assert cuda[view] == pytest.approx(cpu[view], abs=1e-6)
