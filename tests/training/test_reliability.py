"""Never lose a user's data, and fail before the work: the run folder, resume and pre-flight checks,
each through the command line as a user meets them (one line on stderr, exit code 2)."""

import json

import pytest
import torch

from ranklist.cli import main
from ranklist.errors import one_line
from tests.training.test_protocols import _recipe, make_split_folders


def _fails(argv, capsys, *messages) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ranklist: error: ") and "\n" not in err, err
    for message in messages:
        assert message in err, err
    return err


@pytest.fixture
def finished_run(tiny_recipe, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", str(tiny_recipe), "train.iterations=3", "--out", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    return out


@pytest.mark.heavy
def test_overwrite_keeps_the_old_run_until_the_new_one_is_checked(tiny_recipe, finished_run, capsys):
    before = (finished_run / "summary.json").read_text()
    _fails(
        ["train", str(tiny_recipe), "data.root=/nowhere", "--out", str(finished_run), "--overwrite"], capsys, "/nowhere"
    )
    _fails(
        ["train", str(tiny_recipe), "eval.ks=[1,1000]", "--out", str(finished_run), "--overwrite"],
        capsys,
        "Recall@1000",
    )
    assert (finished_run / "summary.json").read_text() == before and (finished_run / "checkpoints/last.pt").is_file()


def test_overwrite_replaces_only_a_run_folder(tiny_recipe, tmp_path, capsys):
    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep")
    _fails(["train", str(tiny_recipe), "--out", str(precious), "--overwrite"], capsys, "not a run folder")
    assert (precious / "notes.txt").read_text() == "keep"
    data_root = tmp_path / "fm"  # the recipe's dataset folder (conftest)
    _fails(["train", str(tiny_recipe), "--out", str(data_root), "--overwrite"], capsys, "holds the dataset")
    _fails(["train", str(tiny_recipe), "--out", str(tmp_path), "--overwrite"], capsys, "holds the dataset")
    assert any(data_root.iterdir())
    (tmp_path / "file").write_text("x")
    _fails(["train", str(tiny_recipe), "--out", str(tmp_path / "file")], capsys, "is a file")


@pytest.mark.heavy
def test_resume_refuses_a_changed_configuration(tiny_recipe, finished_run, capsys):
    _fails(
        [
            "train",
            str(tiny_recipe),
            "train.iterations=4",
            "loss.params.neg_temperature=12",
            "--out",
            str(finished_run),
            "--resume",
        ],
        capsys,
        "loss.params.neg_temperature: None recorded, 12 given",
    )
    assert (
        main(["train", str(tiny_recipe), "train.iterations=4", "--out", str(finished_run), "--resume", "--no-progress"])
        == 0
    )
    assert json.loads((finished_run / "summary.json").read_text())["iterations"] == 4
    assert "iterations: 4" in (finished_run / "config.yaml").read_text()
    assert json.loads((finished_run / "resumes.jsonl").read_text()) == {
        "step": 3,
        "changed": {"train.iterations": [3, 4]},
    }


@pytest.mark.heavy
def test_an_unreadable_checkpoint_stops_a_resume(tiny_recipe, finished_run, capsys):
    (finished_run / "checkpoints/last.pt").write_bytes(b"")
    _fails(["train", str(tiny_recipe), "train.iterations=3", "--out", str(finished_run), "--resume"], capsys, "last.pt")


@pytest.mark.parametrize(
    "override,message",
    [
        ("eval.ks=[1,100]", "asks for Recall@100 but each query has only 29 candidates"),
        ("data.classes_per_batch=9", "classes_per_batch=9 x world_size=1 exceeds the 3 classes"),
        ("train.device=cuda", "no usable CUDA device"),
        ("train.device=warp", "not a device name"),
    ],
)
def test_what_is_knowable_fails_before_training(tiny_recipe, tmp_path, capsys, override, message):
    if override == "train.device=cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = tmp_path / "run"
    _fails(["train", str(tiny_recipe), override, "--out", str(out)], capsys, message)
    assert not out.exists()


def test_an_unreadable_image_fails_before_training(tmp_path, capsys):
    root = make_split_folders(tmp_path / "data")
    bad = root / "gallery" / "u3" / "4.jpg"
    bad.write_bytes(b"not an image")
    out = tmp_path / "run"
    _fails(["train", _recipe(tmp_path, "folder", root), "--out", str(out)], capsys, str(bad), "gallery split")
    assert not out.exists()


@pytest.mark.heavy
def test_evaluate_out_must_be_a_json_file(finished_run, tmp_path, capsys):
    root = json.loads((finished_run / "summary.json").read_text())["config"]["data"]["root"]
    _fails(
        [
            "evaluate",
            str(finished_run / "checkpoints/best.pt"),
            "--dataset",
            "fashion_mnist",
            "--root",
            root,
            "--out",
            str(tmp_path),
        ],
        capsys,
        "--out must name a .json file",
    )


def test_malformed_recipes_are_one_line(tmp_path, capsys):
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    _fails(["train", str(tmp_path / "list.yaml")], capsys, "must hold a mapping")
    (tmp_path / "bad.yaml").write_text("data: {name: emoji\n")
    _fails(["train", str(tmp_path / "bad.yaml")], capsys, "is not valid YAML")


def test_one_line_keeps_what_matters():
    worker = ValueError(
        "Caught ValueError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
        '  File "x.py", line 1\nValueError: cannot read image /data/a.jpg: truncated'
    )
    assert one_line(worker) == "ValueError: cannot read image /data/a.jpg: truncated"
    assert (
        one_line(ValueError("model_state does not fit:\n\tMissing key(s): a.\n\tUnexpected key(s): b."))
        == "model_state does not fit: Missing key(s): a. Unexpected key(s): b."
    )
    assert (
        one_line(OSError(28, "No space left on device", "/runs/x/last.pt"))
        == "No space left on device: /runs/x/last.pt"
    )
