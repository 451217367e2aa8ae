"""One way to embed: a run records its evaluation precision and memory format in its checkpoints, and
`evaluate`, `embed`, `index` and the server embed that way by default (reproducing the run's numbers)."""

import json

import numpy as np
import pytest
import torch

from ranklist.cli import main
from ranklist.models import Inference, load_model, model_checkpoint
from ranklist.retrieval import load_index
from ranklist.retrieval.embeddings_file import read_embeddings


@pytest.fixture
def bf16_run(tiny_recipe, tmp_path):
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                str(tiny_recipe),
                "train.iterations=2",
                "precision.eval=bf16",
                "train.channels_last=true",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    return out


@pytest.mark.heavy
def test_evaluate_embed_and_index_embed_as_the_run_did(bf16_run, tmp_path, capsys):
    summary = json.loads((bf16_run / "summary.json").read_text())
    checkpoint = str(bf16_run / "checkpoints/best.pt")
    model = load_model(checkpoint)
    assert model.inference == Inference("bf16", True)
    assert next(p for p in model.parameters() if p.dim() == 4).is_contiguous(memory_format=torch.channels_last)
    root = summary["config"]["data"]["root"]
    data = ["--dataset", "fashion_mnist", "--root", root, "--no-progress"]
    capsys.readouterr()
    assert main(["evaluate", checkpoint, *data, "--ks", *map(str, summary["config"]["eval"]["ks"])]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == summary["test"] and "bf16 forward (the run's)" in err
    assert main(["embed", checkpoint, *data, "--out", str(tmp_path / "e.npz")]) == 0
    assert read_embeddings(tmp_path / "e.npz").precision == "bf16"
    assert main(["embed", checkpoint, *data, "--precision", "fp32", "--out", str(tmp_path / "f.npz")]) == 0
    bf16, fp32 = read_embeddings(tmp_path / "e.npz").embedding, read_embeddings(tmp_path / "f.npz").embedding
    assert read_embeddings(tmp_path / "f.npz").precision == "fp32" and 0 < np.abs(bf16 - fp32).max() < 0.1
    assert main(["index", "--checkpoint", checkpoint, *data, "--out", str(tmp_path / "idx")]) == 0
    assert load_index(tmp_path / "idx").meta["sources"][0]["precision"] == "bf16"


def test_checkpoints_without_the_record_embed_in_fp32_and_bad_records_are_named(tmp_path):
    from ranklist.atomic import atomic_torch_save
    from ranklist.models import build_model

    model = build_model("small_cnn", embedding_dim=4, pretrained=False)
    old = {k: v for k, v in model_checkpoint(model).items() if k != "inference"}
    atomic_torch_save(old, tmp_path / "old.pt")
    assert load_model(tmp_path / "old.pt").inference == Inference()
    atomic_torch_save({**old, "inference": {"precision": "fp16"}}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=r"bad.pt: precision must be one of \['fp32', 'bf16'\], got 'fp16'"):
        load_model(tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="not an inference record"):
        Inference.from_dict({"precision": "fp32", "speed": 2})
