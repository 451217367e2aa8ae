import pytest

from tests.serving.fixtures import make_checkpoint, make_folder


@pytest.fixture(scope="session")
def served(tmp_path_factory):
    """A labelled folder index (24 items, 6 classes: the test split, then the train split added) built by
    `ranklist index` from a small_cnn checkpoint, and its ONNX export."""
    pytest.importorskip("fastapi")
    from ranklist.cli import main

    tmp = tmp_path_factory.mktemp("served")
    root, checkpoint = make_folder(tmp / "images"), make_checkpoint(tmp / "m.pt")
    data = ["--dataset", "folder", "--root", str(root), "--no-progress"]
    assert main(["index", "--checkpoint", str(checkpoint), *data, "--split", "test", "--out", str(tmp / "idx")]) == 0
    assert main(["index", "add", str(tmp / "idx"), "--checkpoint", str(checkpoint), *data, "--split", "train"]) == 0
    assert main(["export", str(checkpoint), "--out", str(tmp / "m.onnx")]) == 0
    return {"root": root, "checkpoint": checkpoint, "index": tmp / "idx", "onnx": tmp / "m.onnx", "tmp": tmp}
