"""What the command line says to a careless user: one line naming the cause, exit code 2 (130 for Ctrl-C),
no traceback, nothing overwritten."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from ranklist.cli import main
from ranklist.retrieval import build_index
from tests.serving.fixtures import make_checkpoint, make_folder


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    return code, err


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("cli") / "m.pt")


def test_export_refuses_an_existing_file_and_names_opset_problems(tmp_path, capsys, checkpoint):
    pytest.importorskip("onnx")
    mine = tmp_path / "mine.onnx"
    mine.write_text("a user's file")
    code, err = run(capsys, "export", checkpoint, "--out", mine)
    assert (
        code == 2
        and "already exists: refusing to overwrite it; pass --replace" in err
        and mine.read_text() == "a user's file"
    )
    code, err = run(capsys, "export", checkpoint, "--out", tmp_path / "old.onnx", "--opset", 7)
    assert code == 2 and err.startswith("ranklist: error: ONNX export at opset 7 failed:") and "default opset 18" in err
    assert "\n" not in err and "Torch IR graph" not in err
    code, err = run(capsys, "export", checkpoint, "--out", tmp_path / "x.onnx", "--opset", 3)
    assert code == 2 and "opset 3 is outside what this torch exports" in err
    assert run(capsys, "export", checkpoint, "--out", mine, "--replace")[0] == 0 and mine.stat().st_size > 1000


def test_an_ivfpq_index_on_too_few_vectors_is_refused_by_count():
    with pytest.raises(ValueError, match="ivfpq needs at least 256 vectors to train its product quantiser, got 30"):
        build_index(np.random.default_rng(0).normal(size=(30, 16)), kind="ivfpq", m=4)


def test_ctrl_c_is_one_line_and_exit_130(capsys, monkeypatch):
    import ranklist.cli.export as export

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(export, "export_command", interrupted)
    code, err = run(capsys, "export", "x.pt", "--out", "y.onnx")
    assert code == 130 and err.startswith("ranklist: interrupted (export)") and "\n" not in err


def test_unscorable_splits_are_refused_before_training(tmp_path, capsys, checkpoint):
    one = make_folder(tmp_path / "one", classes=6, per_class=1)  # every class a single image
    code, err = run(capsys, "evaluate", checkpoint, "--dataset", "folder", "--root", one, "--no-progress")
    assert code == 2 and "no query has a same-class item to find (each of its 3 classes has a single item)" in err
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "data": {"name": "folder", "root": str(one), "image_size": 16, "resize": 18, "val_fraction": 0},
                "model": {"backbone": "small_cnn", "pretrained": False, "embedding_dim": 8},
            }
        )
    )
    code, err = run(capsys, "train", recipe, "train.iterations=2", "--out", tmp_path / "run", "--no-progress")
    assert code == 2 and "every class of the test split has a single image (3 classes)" in err
    assert not (tmp_path / "run").exists()


def test_query_and_gallery_without_a_shared_class_are_refused_before_training(tmp_path, capsys):
    root = make_folder(tmp_path / "src", classes=8, per_class=3)
    lines = ["path,label,split"] + [
        f"src/class_{c}/{i}.{'jpg' if i == 0 else 'png'},{c},{split}"
        for c, split in enumerate(["train"] * 4 + ["query"] * 2 + ["gallery"] * 2)
        for i in range(3)
    ]
    (tmp_path / "list.csv").write_text("\n".join(lines))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "data": {
                    "name": "csv",
                    "root": str(tmp_path / "list.csv"),
                    "image_size": 16,
                    "resize": 18,
                    "classes_per_batch": 2,
                    "samples_per_class": 2,
                    "val_fraction": 0,
                },
                "model": {"backbone": "small_cnn", "pretrained": False, "embedding_dim": 8},
            }
        )
    )
    assert root.exists()
    code, err = run(
        capsys, "train", recipe, "train.iterations=2", "eval.ks=[1]", "--out", tmp_path / "run", "--no-progress"
    )
    assert code == 2 and "the test queries cannot be scored: no query class has an item in the gallery" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.heavy  # a training run
def test_divergence_says_when_and_what_to_try(tmp_path, capsys):
    root = make_folder(tmp_path / "src", classes=8, per_class=4)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "data": {
                    "name": "folder",
                    "root": str(root),
                    "image_size": 16,
                    "resize": 18,
                    "classes_per_batch": 2,
                    "samples_per_class": 2,
                    "val_fraction": 0,
                },
                "model": {"backbone": "small_cnn", "pretrained": False, "embedding_dim": 8},
                "train": {"iterations": 20, "threads": 1},
                "eval": {"ks": [1]},
            }
        )
    )
    code, err = run(capsys, "train", recipe, "optim.lr=1e9", "--out", tmp_path / "run", "--no-progress")
    assert code == 2 and "training diverged at step" in err and "lower optim.lr (now 1e+09)" in err and "\n" not in err
