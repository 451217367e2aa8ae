import numpy as np
import pytest
import torch

from ranklist.data import build_dataset
from ranklist.data import readers
from tests.data.fixtures import make_cars, make_cub, make_fashion_mnist, make_inshop, make_sop, write_image


@pytest.fixture
def small_counts(monkeypatch):
    """The fixtures are complete in layout but tiny: expect their sizes instead of the published ones."""
    monkeypatch.setitem(readers.EXPECTED, "cub200", {"trainval": (200, 100), "test": (200, 100)})
    monkeypatch.setitem(readers.EXPECTED, "cars196", {"trainval": (196, 98), "test": (196, 98)})
    monkeypatch.setitem(readers.EXPECTED, "sop", {"trainval": (12, 6), "test": (10, 5)})
    monkeypatch.setitem(readers.EXPECTED, "inshop", {"trainval": (8, 4), "query": (4, None), "gallery": (8, None)})


def test_cub_split_by_class_and_val_is_class_disjoint(tmp_path, small_counts):
    root = make_cub(tmp_path / "CUB_200_2011")
    trainval = build_dataset("cub200", "trainval", root=root)
    test = build_dataset("cub200", "test", root=root)
    assert len(trainval) == 200 and len(test) == 200
    assert {int(p.parent.name[:3]) for p in trainval.paths} == set(range(1, 101))
    assert {int(p.parent.name[:3]) for p in test.paths} == set(range(101, 201))
    train, val = build_dataset("cub200", "train", root=root), build_dataset("cub200", "val", root=root)
    assert len(train) + len(val) == 200 and len(val) == 40  # 20 % of 100 classes, 2 images each
    assert not {p.parent for p in train.paths} & {p.parent for p in val.paths}
    assert train.labels.min() == 0 and train.labels.max() == 79  # remapped per split
    image, label = test[0]
    assert image.shape == (3, 8, 8) and image.dtype == torch.float32 and label == 0
    assert test.class_names[0] == "101.Bird_101"


def test_published_counts_are_enforced(tmp_path):
    root = make_cub(tmp_path / "cub")
    with pytest.raises(ValueError, match=r"cub200 split 'trainval' has 200 images in 100 classes, expected 5864 in 100"):
        build_dataset("cub200", "train", root=root)
    assert len(build_dataset("cub200", "trainval", root=root, allow_partial=True)) == 200


def test_cars196_from_its_mat_file(tmp_path, small_counts):
    root = make_cars(tmp_path / "cars")
    trainval, test = build_dataset("cars196", "trainval", root=root), build_dataset("cars196", "test", root=root)
    assert len(trainval) == 196 and len(test) == 196
    assert test.class_names[0] == "Car model 99"
    assert trainval[5][0].shape == (3, 8, 8)


def test_sop_listing_files(tmp_path, small_counts):
    root = make_sop(tmp_path / "Stanford_Online_Products")
    assert len(build_dataset("sop", "trainval", root=root)) == 12
    test = build_dataset("sop", "test", root=root)
    assert len(test) == 10 and sorted(set(test.labels.tolist())) == [0, 1, 2, 3, 4]


def test_inshop_query_and_gallery_share_labels(tmp_path, small_counts):
    root = make_inshop(tmp_path / "inshop")
    query, gallery = build_dataset("inshop", "query", root=root), build_dataset("inshop", "gallery", root=root)
    assert len(query) == 4 and len(gallery) == 8
    item = {p: lbl for p, lbl in zip(query.paths, query.labels)}
    for p, lbl in zip(gallery.paths, gallery.labels):
        same = [q for q in item if q.parent == p.parent]
        assert item[same[0]] == lbl
    assert len(build_dataset("inshop", "trainval", root=root)) == 8
    with pytest.raises(ValueError, match="unknown split 'test' for inshop"):
        build_dataset("inshop", "test", root=root)


def test_missing_folder_and_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"CUB-200-2011 folder not found: .*nowhere \(expected there: images.txt"):
        build_dataset("cub200", "test", root=tmp_path / "nowhere")
    (tmp_path / "sop").mkdir()
    with pytest.raises(FileNotFoundError, match="lacks Ebay_train.txt, Ebay_test.txt"):
        build_dataset("sop", "test", root=tmp_path / "sop")
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'"):
        build_dataset("imagenet", "test", root=tmp_path)


def test_unreadable_image_is_named(tmp_path, small_counts):
    root = make_sop(tmp_path / "sop")
    test = build_dataset("sop", "test", root=root)
    test.paths[0].write_bytes(b"not an image")
    with pytest.raises(ValueError, match=f"cannot read image {test.paths[0]}"):
        test[0]


def test_folder_and_csv_readers(tmp_path):
    for c in range(6):
        for k in range(3):
            write_image(tmp_path / "imgs" / f"class_{c}" / f"{k}.png", c)
    test = build_dataset("folder", "test", root=tmp_path / "imgs")
    trainval = build_dataset("folder", "trainval", root=tmp_path / "imgs")
    assert len(test) == 9 and len(trainval) == 9
    assert not set(test.class_names) & set(trainval.class_names)
    rows = ["path,label,split"] + [f"imgs/class_{c}/{k}.png,{c},{'train' if c < 4 else 'test'}" for c in range(6) for k in range(3)]
    (tmp_path / "list.csv").write_text("\n".join(rows))
    assert len(build_dataset("csv", "test", root=tmp_path / "list.csv")) == 6
    with pytest.raises(ValueError, match=r"no row has split 'query'; splits present: \['test', 'train'\]"):
        build_dataset("csv", "query", root=tmp_path / "list.csv")
    (tmp_path / "bad.csv").write_text("a.png,cat\n")
    with pytest.raises(ValueError, match="integer label"):
        build_dataset("csv", "test", root=tmp_path / "bad.csv")


def test_fashion_mnist_five_five_class_split(tmp_path):
    root = make_fashion_mnist(tmp_path / "fm")
    test = build_dataset("fashion_mnist", "test", root=root)
    assert len(test) == 30 and test.class_names == ["Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    assert test[0][0].shape == (3, 28, 28)
    trainval = build_dataset("fashion_mnist", "trainval", root=root)
    assert len(trainval) == 30 and np.array_equal(np.unique(trainval.labels), np.arange(5))
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        build_dataset("fashion_mnist", "test", root=tmp_path / "absent")
