"""An index built from a checkpoint and a dataset split: items, thumbnails, the model check, the CLI."""

import numpy as np
import pytest
import torch

from ranklist.cli import main
from ranklist.data import ArrayDataset, build_dataset
from ranklist.models import evaluation_embedding, load_model
from ranklist.models.fingerprint import model_fingerprint
from ranklist.retrieval import load_index, search
from ranklist.retrieval.from_model import add_from_model, index_from_model
from tests.data.fixtures import make_fashion_mnist
from tests.serving.fixtures import make_checkpoint, make_folder


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("from_model")
    return make_folder(tmp / "images"), make_checkpoint(tmp / "a.pt", seed=0), make_checkpoint(tmp / "b.pt", seed=1)


def test_index_from_model_uses_the_checkpoints_preprocessing(data):
    root, checkpoint, _ = data
    model = load_model(checkpoint)
    dataset = build_dataset("folder", "test", root=root, transform=model.preprocessing.transform(train=False))
    index = index_from_model(model, dataset, source={"dataset": "folder"})
    assert index.model == model_fingerprint(model) and index.labels.tolist() == dataset.labels.tolist()
    assert index.items.paths.tolist() == [str(p) for p in dataset.paths] and index.items.thumbnails is None
    # the reference: embed each image by hand with the record's evaluation transform
    transform = model.preprocessing.transform(train=False)
    with torch.no_grad():
        expected = evaluation_embedding(
            model.eval()(torch.stack([transform(dataset.load_image(i)) for i in range(len(dataset))]))
        )
    scores, ids = search(index, expected.numpy(), 1)
    np.testing.assert_array_equal(ids[:, 0], np.arange(len(dataset)))
    np.testing.assert_allclose(scores[:, 0], 1, atol=1e-5)


def test_in_memory_images_get_thumbnails_and_additions_share_class_numbers(data):
    _, checkpoint, other = data
    model = load_model(checkpoint)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (6, 28, 28, 3), dtype=np.uint8)
    first = ArrayDataset(
        images[:4], np.array([0, 0, 1, 1]), ["cat", "dog"], transform=model.preprocessing.transform(train=False)
    )
    index = index_from_model(model, first)
    assert index.items.thumbnails.shape == (4, 64, 64, 3) and index.items.thumbnails.dtype == np.uint8
    second = ArrayDataset(
        images[4:], np.array([0, 1]), ["dog", "bird"], transform=model.preprocessing.transform(train=False)
    )
    with pytest.raises(ValueError, match="the added items come from another model"):
        add_from_model(index, load_model(other), second)
    add_from_model(index, model, second)
    assert index.meta["class_names"] == ["cat", "dog", "bird"] and index.labels.tolist() == [0, 0, 1, 1, 1, 2]
    assert index.ids.tolist() == list(range(6))


def test_index_commands(data, tmp_path, capsys):
    root, checkpoint, other = data
    out = tmp_path / "idx"
    common = ["--dataset", "folder", "--root", str(root), "--no-progress"]
    assert main(["index", "--checkpoint", str(checkpoint), *common, "--out", str(out)]) == 0
    assert main(["index", "add", str(out), "--checkpoint", str(checkpoint), *common, "--split", "train"]) == 0
    index = load_index(out)
    assert len(index) == 16 + 8 and index.meta["sources"][1]["split"] == "train" and index.items.paths is not None
    capsys.readouterr()
    cases = [
        (["index", "add", str(out), "--checkpoint", str(other), *common], "the added items come from another model"),
        (
            ["index", "--checkpoint", str(checkpoint), *common, "--out", str(out)],
            "already holds an index; pass --replace",
        ),
        (["index", "--checkpoint", str(checkpoint), *common, "--out", str(root)], "exists and is not an index"),
        (["index", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "x")], "--checkpoint needs --dataset"),
        (["index", "--out", str(tmp_path / "y")], "nothing to index"),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("ranklist: error: ") and message in err and "\n" not in err
    assert len(load_index(out)) == 24 and sorted(p.name for p in root.iterdir())[0] == "class_0"
    assert (
        main(
            [
                "index",
                "--checkpoint",
                str(checkpoint),
                *common,
                "--out",
                str(out),
                "--replace",
                "--kind",
                "ivf",
                "--nlist",
                "2",
            ]
        )
        == 0
    )
    assert load_index(out).meta["kind"] == "ivf" and len(load_index(out)) == 16


def test_embeddings_file_index_search_and_add(data, tmp_path, capsys):
    _, checkpoint, _ = data
    fm = make_fashion_mnist(tmp_path / "fm")
    emb = tmp_path / "e.npz"
    assert (
        main(
            [
                "embed",
                str(checkpoint),
                "--dataset",
                "fashion_mnist",
                "--root",
                str(fm),
                "--split",
                "test",
                "--out",
                str(emb),
                "--no-progress",
            ]
        )
        == 0
    )
    assert main(["index", str(emb), "--out", str(tmp_path / "idx")]) == 0
    assert main(["index", "add", str(tmp_path / "idx"), str(emb)]) == 0
    n = len(np.load(emb)["embedding"])
    assert len(load_index(tmp_path / "idx")) == 2 * n
    capsys.readouterr()
    assert main(["search", str(tmp_path / "idx"), str(emb), "--k", "2"]) == 0
    first = __import__("json").loads(capsys.readouterr().out.splitlines()[0])
    assert first["query"] == "0" and set(first["neighbours"]) == {"0", str(n)}  # itself and its added copy


def test_index_add_is_a_subcommand_beside_the_embeddings_file(capsys):
    from ranklist.cli import build_parser

    parser = build_parser()
    built = parser.parse_args(["index", "--out", "idx", "e.npz", "--kind", "ivf"])
    assert (built.run.__name__, built.embeddings, built.out, built.kind) == ("build_command", "e.npz", "idx", "ivf")
    added = parser.parse_args(["index", "add", "idx", "e.npz"])
    assert (added.run.__name__, added.index, added.embeddings) == ("add_command", "idx", "e.npz")
    with pytest.raises(SystemExit):
        parser.parse_args(["index", "e.npz", "f.npz", "--out", "x"])
    assert "one embeddings file to index, got 'e.npz' and 'f.npz'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args(["index", "add", "--help"])
    assert "usage: ranklist index add" in capsys.readouterr().out
