import json
import subprocess
import sys

import numpy as np
import pytest

from ranklist.cli import main


@pytest.mark.heavy
def test_train_evaluate_embed(tiny_recipe, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", str(tiny_recipe), "train.iterations=2", "--out", str(out), "--no-progress"]) == 0
    assert "test recall@1" in capsys.readouterr().out
    root = json.loads((out / "summary.json").read_text())["config"]["data"]["root"]
    checkpoint = str(out / "checkpoints/best.pt")
    assert (
        main(
            [
                "evaluate",
                checkpoint,
                "--dataset",
                "fashion_mnist",
                "--root",
                root,
                "--ks",
                "1",
                "2",
                "--out",
                str(tmp_path / "m.json"),
                "--no-progress",
            ]
        )
        == 0
    )
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert set(metrics) == {"L", "M", "H", "concat"} and 0 <= metrics["concat"]["recall@1"] <= 1
    assert (
        main(
            [
                "embed",
                checkpoint,
                "--dataset",
                "fashion_mnist",
                "--root",
                root,
                "--out",
                str(tmp_path / "e.npz"),
                "--no-progress",
            ]
        )
        == 0
    )
    saved = np.load(tmp_path / "e.npz")
    assert saved["embedding"].shape == (30, 24) and np.allclose(
        np.linalg.norm(saved["embedding"], axis=1), 1, atol=1e-5
    )


def test_errors_are_one_line_with_exit_code_2(tiny_recipe, tmp_path, capsys):
    cases = [
        (["train", str(tiny_recipe), "optim.lr=-1", "--out", str(tmp_path / "a")], "optim.lr must be > 0, got -1.0"),
        (
            ["train", str(tiny_recipe), "data.root=/nowhere", "--out", str(tmp_path / "b")],
            "Fashion-MNIST folder not found: /nowhere",
        ),
        (["evaluate", str(tmp_path / "missing.pt"), "--dataset", "emoji"], "checkpoint not found"),
        (["train", "missing.yaml"], "config file not found: missing.yaml"),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("ranklist: error: ") and message in err and "\n" not in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    (tmp_path / "junk.pt").write_bytes(b"junk")
    assert main(["evaluate", str(tmp_path / "junk.pt"), "--dataset", "emoji"]) == 2
    assert "cannot read checkpoint" in capsys.readouterr().err


@pytest.mark.heavy
def test_python_dash_m_works():
    done = subprocess.run([sys.executable, "-m", "ranklist", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "demo" in done.stdout


@pytest.mark.heavy
def test_index_and_search_commands(tiny_recipe, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", str(tiny_recipe), "train.iterations=1", "--out", str(out), "--no-progress"]) == 0
    root = json.loads((out / "summary.json").read_text())["config"]["data"]["root"]
    assert (
        main(
            [
                "embed",
                str(out / "checkpoints/last.pt"),
                "--dataset",
                "fashion_mnist",
                "--root",
                root,
                "--out",
                str(tmp_path / "e.npz"),
                "--no-progress",
            ]
        )
        == 0
    )
    assert main(["index", str(tmp_path / "e.npz"), "--out", str(tmp_path / "idx")]) == 0
    capsys.readouterr()
    assert main(["search", str(tmp_path / "idx"), str(tmp_path / "e.npz"), "--k", "3"]) == 0
    first = json.loads(capsys.readouterr().out.splitlines()[0])
    assert first["neighbours"][0] == first["query"] and len(first["scores"]) == 3  # an item finds itself first
