"""A user's own data and protocol, end to end through the CLI: a CSV or split folders declaring
train / query / gallery, photos of mixed sizes, and `ranklist evaluate` reproducing a run's test
metrics exactly from the checkpoint's own preprocessing record."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ranklist.cli import main
from ranklist.data import evaluation_splits


def _photo(path, colour: int, size: tuple[int, int]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (colour % 256, (7 * colour) % 256, (31 * colour) % 256)).save(path)
    return path


def _size(c: int, k: int) -> tuple[int, int]:
    return (20 + 3 * ((c + k) % 5), 18 + 4 * (k % 3))  # photos of many sizes, as real benchmarks have


def make_split_folders(root, query_gallery: bool = True):
    """root/train: 8 classes; 6 unseen classes of 5 images: 2 queries and 3 gallery items each in
    root/query and root/gallery, or all 5 in root/test (self-retrieval)."""
    for c in range(8):
        for k in range(4):
            _photo(root / "train" / f"t{c}" / f"{k}.png", 11 * c + k, _size(c, k))
    for c in range(6):
        for k in range(5):
            split = ("query" if k < 2 else "gallery") if query_gallery else "test"
            _photo(root / split / f"u{c}" / f"{k}.jpg", 97 + 13 * c + 2 * k, _size(c, k))
    return root


def make_csv(root):
    """The same protocol as a CSV of path,label,split rows (labels are names)."""
    folders = make_split_folders(root / "images")
    rows = ["path,label,split"]
    for path in sorted(folders.rglob("*.*")):
        split, label = path.relative_to(folders).parts[:2]
        rows.append(f"{path.relative_to(root)},{label},{split}")
    (root / "list.csv").write_text("\n".join(rows) + "\n")
    return root / "list.csv"


def _recipe(tmp_path, name: str, root, extra: str = "") -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"""
name: {name}
data: {{name: {name}, root: {root}, image_size: 16, classes_per_batch: 2, samples_per_class: 2, \
val_fraction: 0.25{extra}}}
model: {{backbone: small_cnn, pretrained: false, embedding_dim: 8}}
optim: {{lr: 0.05}}
train: {{iterations: 3, val_every: 3, log_every: 1, checkpoint_every: 3, threads: 1}}
eval: {{ks: [1, 2], batch_size: 5, grid_queries: 3}}
""")
    return str(path)


@pytest.mark.heavy
@pytest.mark.parametrize("layout", ["csv", "folder"])
def test_query_gallery_protocol_trains_and_evaluates_end_to_end(tmp_path, layout, capsys):
    root = make_csv(tmp_path / "data") if layout == "csv" else make_split_folders(tmp_path / "data")
    assert evaluation_splits(layout, root).gallery == "gallery"
    out = tmp_path / "run"
    assert main(["train", _recipe(tmp_path, layout, root), "--out", str(out), "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dataset"]["test_images"] == 12 and summary["dataset"]["gallery_images"] == 18
    assert summary["test"]["concat"]["num_queries"] == 12  # query vs gallery: every query has its class in the gallery
    assert (out / "plots/retrieval_grid.png").is_file()  # mixed-size photos in the grid
    capsys.readouterr()
    assert (
        main(
            [
                "evaluate",
                str(out / "checkpoints/best.pt"),
                "--dataset",
                layout,
                "--root",
                str(root),
                "--ks",
                "1",
                "2",
                "--no-progress",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out) == summary["test"]  # the dataset's declared protocol, exactly


@pytest.mark.parametrize(
    "extra", [", recipe: paper", ", recipe: rrc", ", recipe: resize", ", recipe: paper, resize: 24"]
)
@pytest.mark.heavy
def test_evaluate_reproduces_the_summary_from_the_checkpoint(tmp_path, extra, capsys):
    root = make_split_folders(tmp_path / "data", query_gallery=False)
    assert evaluation_splits("folder", root).gallery is None
    out = tmp_path / "run"
    assert main(["train", _recipe(tmp_path, "folder", root, extra), "--out", str(out), "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    capsys.readouterr()
    assert (
        main(
            [
                "evaluate",
                str(out / "checkpoints/best.pt"),
                "--dataset",
                "folder",
                "--root",
                str(root),
                "--split",
                "test",
                "--ks",
                "1",
                "2",
                "--no-progress",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out) == summary["test"]
    record = json.loads((out / "summary.json").read_text())["preprocessing"]
    assert record["recipe"] == extra.split("recipe: ")[1].split(",")[0] and record["image_size"] == 16
    assert record["resize"] == (24 if "resize: 24" in extra else 18)


@pytest.mark.heavy
def test_gallery_split_is_matched_by_class_identity(tmp_path, capsys):
    """Query and gallery splits number their classes apart; `evaluate --gallery-split` must match
    classes by identity (a gallery with one class fewer shifts every number)."""
    root = make_split_folders(tmp_path / "data")
    for image in (root / "gallery" / "u0").iterdir():
        image.unlink()
    (root / "gallery" / "u0").rmdir()
    out = tmp_path / "run"
    assert main(["train", _recipe(tmp_path, "folder", root), "--out", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    assert (
        main(
            [
                "evaluate",
                str(out / "checkpoints/best.pt"),
                "--dataset",
                "folder",
                "--root",
                str(root),
                "--split",
                "query",
                "--gallery-split",
                "gallery",
                "--ks",
                "1",
                "--no-progress",
            ]
        )
        == 0
    )
    metrics = json.loads(capsys.readouterr().out)["concat"]
    assert metrics["num_queries"] == 10 and metrics["num_excluded_queries"] == 2  # u0's queries: no gallery item
    files = {}
    for split in ("query", "gallery"):
        files[split] = tmp_path / f"{split}.npz"
        assert (
            main(
                [
                    "embed",
                    str(out / "checkpoints/best.pt"),
                    "--dataset",
                    "folder",
                    "--root",
                    str(root),
                    "--split",
                    split,
                    "--out",
                    str(files[split]),
                    "--no-progress",
                ]
            )
            == 0
        )
    query, gallery = (np.load(files[s]) for s in ("query", "gallery"))
    classes = {
        s: np.array([Path(p).parent.name for p in a["paths"]]) for s, a in (("query", query), ("gallery", gallery))
    }
    nearest = np.argmax(query["embedding"] @ gallery["embedding"].T, axis=1)
    kept = np.isin(classes["query"], classes["gallery"])
    assert metrics["recall@1"] == pytest.approx(np.mean(classes["gallery"][nearest][kept] == classes["query"][kept]))
