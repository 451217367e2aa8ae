"""hf:<dir> end to end through the CLI: train 2 iterations, evaluate the checkpoint, and evaluate it
again after the model's directory is gone (the checkpoint carries the architecture)."""

from __future__ import annotations

import json
import shutil

import pytest

from ranklist.cli import main
from tests.data.fixtures import make_fashion_mnist
from tests.models.hf_fixtures import FAMILIES, SIZES, save_tiny


def _recipe(tmp_path, folder, size: int):
    root = make_fashion_mnist(tmp_path / "fm")
    path = tmp_path / "hf.yaml"
    path.write_text(f"""
name: hf-tiny
data: {{name: fashion_mnist, root: {root}, image_size: {size}, resize: {size + 4}, classes_per_batch: 2, \
samples_per_class: 3, val_fraction: 0.2}}
model: {{backbone: "hf:{folder}", pretrained: true, embedding_dim: 8}}
optim: {{name: adamw, lr: 0.0001}}
train: {{iterations: 2, val_every: 2, log_every: 1, checkpoint_every: 2, threads: 1}}
eval: {{ks: [1, 2], batch_size: 16, nmi: false, grid_queries: 2}}
""")
    return path, root


def _evaluate(checkpoint, root, out) -> dict:
    assert (
        main(
            [
                "evaluate",
                str(checkpoint),
                "--dataset",
                "fashion_mnist",
                "--root",
                str(root),
                "--split",
                "test",
                "--ks",
                "1",
                "2",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    return json.loads(out.read_text())


@pytest.mark.heavy
@pytest.mark.parametrize("family", FAMILIES)
def test_train_evaluate_and_reload_without_the_model_directory(family, tmp_path):
    folder = save_tiny(family, tmp_path / family)
    recipe, root = _recipe(tmp_path, folder, SIZES[family])
    out = tmp_path / "run"
    assert main(["train", str(recipe), "--out", str(out), "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    checkpoint = out / "checkpoints" / "best.pt"
    assert summary["preprocessing"]["normalization"]["mean"] == pytest.approx([0.5, 0.4, 0.3])
    first = _evaluate(checkpoint, root, tmp_path / "a.json")
    shutil.rmtree(folder)
    again = _evaluate(checkpoint, root, tmp_path / "b.json")
    assert first == again
    for level, metrics in summary["test"].items():
        assert {k: first[level][k] for k in metrics} == metrics, level
