import numpy as np
import pytest
import torch

from ranklist.data import benchmarks, build_dataset
from tests.data.fixtures import (
    make_cars,
    make_cub,
    make_fashion_mnist,
    make_inshop,
    make_sop,
    write_idx,
    write_image,
)


@pytest.fixture
def small_counts(monkeypatch):
    """The fixtures are complete in layout but tiny: publish their sizes instead of the real ones."""
    monkeypatch.setitem(benchmarks.PUBLISHED, "cub200", {"trainval": (200, 100), "test": (200, 100)})
    monkeypatch.setitem(benchmarks.PUBLISHED, "cars196", {"trainval": (196, 98), "test": (196, 98)})
    monkeypatch.setitem(benchmarks.PUBLISHED, "sop", {"trainval": (12, 6), "test": (10, 5)})
    monkeypatch.setitem(benchmarks.PUBLISHED, "inshop", {"trainval": (8, 4), "query": (4, None), "gallery": (8, None)})


def test_cub_split_by_class_and_val_is_class_disjoint(tmp_path, small_counts):
    root = make_cub(tmp_path / "CUB_200_2011")
    trainval = build_dataset("cub200", "trainval", root=root)
    test = build_dataset("cub200", "test", root=root)
    assert len(trainval) == 200 and len(test) == 200
    assert {int(p.parent.name[:3]) for p in trainval.paths} == set(range(1, 101))
    assert {int(p.parent.name[:3]) for p in test.paths} == set(range(101, 201))
    assert test.class_ids == list(range(101, 201)) and test.class_names[0] == "101.Bird_101"
    assert all(test.class_names[lbl] == p.parent.name for p, lbl in zip(test.paths, test.labels))
    train, val = build_dataset("cub200", "train", root=root), build_dataset("cub200", "val", root=root)
    assert len(train) + len(val) == 200 and len(val) == 40  # 20 % of 100 classes, 2 images each
    assert not {p.parent for p in train.paths} & {p.parent for p in val.paths}
    assert np.array_equal(np.unique(train.labels), np.arange(80))  # numbered 0..C-1 per split
    assert np.array_equal(np.unique(val.labels), np.arange(20))
    other = build_dataset("cub200", "val", root=root, seed=1)
    assert set(other.class_names) != set(val.class_names)  # the carve follows the seed
    image, label = test[0]
    assert image.shape == (3, 8, 8) and image.dtype == torch.float32 and label == 0


def test_published_counts_are_enforced(tmp_path):
    root = make_cub(tmp_path / "cub")
    with pytest.raises(
        ValueError,
        match=r"image_class_labels.txt: cub200 split 'trainval' lists 200 images of 100 classes, "
        r"the published copy has 5864 of 100",
    ):
        build_dataset("cub200", "train", root=root)
    assert len(build_dataset("cub200", "trainval", root=root, allow_partial=True)) == 200


def test_missing_images_of_a_complete_listing(tmp_path, small_counts):
    root = make_sop(tmp_path / "sop")
    (root / "bicycle_final" / "7_1.JPG").unlink()
    with pytest.raises(ValueError, match=r"Ebay_test.txt: 1 of 10 listed images are missing, e.g. .*7_1.JPG"):
        build_dataset("sop", "test", root=root)
    partial = build_dataset("sop", "test", root=root, allow_partial=True)
    assert len(partial) == 9 and len(partial.class_names) == 5


def test_cars196_from_its_mat_file(tmp_path, small_counts, monkeypatch):
    root = make_cars(tmp_path / "cars")
    trainval, test = build_dataset("cars196", "trainval", root=root), build_dataset("cars196", "test", root=root)
    assert len(trainval) == 196 and len(test) == 196  # the file's own `test` flag is not the DML split
    assert test.class_names[0] == "Car model 99" and test.class_ids[0] == 99
    assert [p.name for p in test.paths[:2]] == ["09900.jpg", "09901.jpg"]
    assert trainval[5][0].shape == (3, 8, 8)
    monkeypatch.setitem(benchmarks.PUBLISHED, "cars196", {"trainval": (8054, 98), "test": (8131, 98)})
    with pytest.raises(
        ValueError,
        match=r"cars_annos.mat: cars196 split 'test' lists 196 images of 98 classes, "
        r"the published copy has 8131 of 98",
    ):
        build_dataset("cars196", "test", root=root)


def test_sop_listing_files(tmp_path, small_counts):
    root = make_sop(tmp_path / "Stanford_Online_Products")
    trainval = build_dataset("sop", "trainval", root=root)
    assert len(trainval) == 12 and trainval.class_ids == [1, 2, 3, 4, 5, 6]
    test = build_dataset("sop", "test", root=root)
    assert len(test) == 10 and np.array_equal(test.labels, np.repeat(np.arange(5), 2))
    assert test.paths[0] == root / "bicycle_final" / "7_0.JPG"


def test_inshop_query_and_gallery_share_labels(tmp_path, small_counts):
    root = make_inshop(tmp_path / "inshop")
    query, gallery = build_dataset("inshop", "query", root=root), build_dataset("inshop", "gallery", root=root)
    assert len(query) == 4 and len(gallery) == 8
    assert query.class_names == gallery.class_names == [f"id_{i:08d}" for i in range(5, 9)]
    for dataset in (query, gallery):
        assert all(dataset.class_names[lbl] == p.parent.name for p, lbl in zip(dataset.paths, dataset.labels))
    trainval = build_dataset("inshop", "trainval", root=root)
    assert len(trainval) == 8 and trainval.class_names == [f"id_{i:08d}" for i in range(1, 5)]
    with pytest.raises(ValueError, match="unknown split 'test' for inshop"):
        build_dataset("inshop", "test", root=root)


def test_missing_folder_and_files_are_named(tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"CUB-200-2011 folder not found: .*nowhere \(expected there: images.txt"
    ):
        build_dataset("cub200", "test", root=tmp_path / "nowhere")
    (tmp_path / "sop").mkdir()
    with pytest.raises(FileNotFoundError, match="lacks Ebay_train.txt, Ebay_test.txt"):
        build_dataset("sop", "test", root=tmp_path / "sop")
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'"):
        build_dataset("imagenet", "test", root=tmp_path)
    with pytest.raises(ValueError, match="dataset 'sop' needs a root folder"):
        build_dataset("sop", "test")


def test_malformed_listing_line_is_named(tmp_path, small_counts):
    root = make_sop(tmp_path / "sop")
    (root / "Ebay_test.txt").write_text("image_id class_id super_class_id path\n1 7 1\n")
    with pytest.raises(ValueError, match=r"Ebay_test.txt: line 2 has 3 fields, expected at least 4"):
        build_dataset("sop", "test", root=root)


def test_unreadable_image_is_named(tmp_path, small_counts):
    root = make_sop(tmp_path / "sop")
    test = build_dataset("sop", "test", root=root)
    test.paths[0].write_bytes(b"not an image")
    with pytest.raises(ValueError, match=f"cannot read image {test.paths[0]}"):
        test[0]


def test_labels_need_no_image_decoding(tmp_path, small_counts, monkeypatch):
    root = make_sop(tmp_path / "sop")
    monkeypatch.setattr("PIL.Image.open", lambda *a, **k: pytest.fail("an image was decoded"))
    labels = build_dataset("sop", "train", root=root, val_fraction=0.4).labels
    assert labels.dtype == np.int64 and labels.ndim == 1


def test_folder_reader(tmp_path):
    for c in range(6):
        for k in range(3):
            write_image(tmp_path / "imgs" / f"class_{c}" / ("sub" if k == 2 else "") / f"{k}.png", c)
    test = build_dataset("folder", "test", root=tmp_path / "imgs")
    trainval = build_dataset("folder", "trainval", root=tmp_path / "imgs")
    assert len(test) == 9 and len(trainval) == 9 and not set(test.class_names) & set(trainval.class_names)
    assert all(
        test.class_names[lbl] == p.parts[-2 if p.parent.name != "sub" else -3]
        for p, lbl in zip(test.paths, test.labels)
    )
    with pytest.raises(FileNotFoundError, match="image folder not found"):
        build_dataset("folder", "test", root=tmp_path / "none")


def test_csv_reader_with_split_column(tmp_path):
    for c in range(6):
        for k in range(3):
            write_image(tmp_path / "imgs" / f"{c}_{k}.png", c)
    rows = ["path,label,split"] + [
        f"imgs/{c}_{k}.png,{'cat' if c == 0 else f'kind{c}'},{'train' if c < 4 else 'test'}"
        for c in range(6)
        for k in range(3)
    ]
    (tmp_path / "list.csv").write_text("\n".join(rows))
    test = build_dataset("csv", "test", root=tmp_path / "list.csv")
    assert len(test) == 6 and test.class_names == ["kind4", "kind5"]
    assert len(build_dataset("csv", "trainval", root=tmp_path / "list.csv")) == 12
    train = build_dataset("csv", "train", root=tmp_path / "list.csv", val_fraction=0.5)
    val = build_dataset("csv", "val", root=tmp_path / "list.csv", val_fraction=0.5)
    assert len(train) == len(val) == 6 and not set(train.class_names) & set(val.class_names)  # carved from "train" rows
    with pytest.raises(ValueError, match=r"no row is in split 'query'; split values present: \['test', 'train'\]"):
        build_dataset("csv", "query", root=tmp_path / "list.csv")


def test_csv_reader_errors_and_integer_labels(tmp_path):
    for k in range(8):
        write_image(tmp_path / f"{k}.png", k)
    (tmp_path / "ints.csv").write_text("".join(f"{k}.png,{10 - k // 2}\n" for k in range(8)))
    both = [build_dataset("csv", s, root=tmp_path / "ints.csv") for s in ("trainval", "test")]
    assert sorted(both[0].class_ids + both[1].class_ids) == [7, 8, 9, 10]  # integer ids, split by class
    (tmp_path / "odd.csv").write_text("0.png,1\n1.png\n")
    with pytest.raises(ValueError, match=r"found rows of \[1, 2\] fields"):
        build_dataset("csv", "test", root=tmp_path / "odd.csv")
    (tmp_path / "bad.csv").write_text("0.png,1,holdout\n")
    with pytest.raises(ValueError, match=r"unknown split values \['holdout'\]"):
        build_dataset("csv", "test", root=tmp_path / "bad.csv")
    (tmp_path / "gone.csv").write_text("0.png,1,test\nmissing.png,1,test\n")
    with pytest.raises(FileNotFoundError, match=r"1 listed images are missing, e.g. .*missing.png"):
        build_dataset("csv", "test", root=tmp_path / "gone.csv")


def test_fashion_mnist_five_five_class_split(tmp_path):
    root = make_fashion_mnist(tmp_path / "fm")
    test = build_dataset("fashion_mnist", "test", root=root)
    assert len(test) == 30 and test.class_names == ["Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    image, _ = test[0]
    assert image.shape == (3, 28, 28) and torch.equal(image[0], image[2])
    trainval = build_dataset("fashion_mnist", "trainval", root=root)
    assert len(trainval) == 30 and np.array_equal(np.unique(trainval.labels), np.arange(5))
    val = build_dataset("fashion_mnist", "val", root=root)
    assert len(val.class_names) == 2  # a one-class validation set would be trivially perfect
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        build_dataset("fashion_mnist", "test", root=tmp_path / "absent")
    write_idx(root / "t10k-labels-idx1-ubyte.gz", np.arange(19) % 10)
    with pytest.raises(ValueError, match="60 images but 59 labels"):
        build_dataset("fashion_mnist", "test", root=root)
    (root / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b broken")
    with pytest.raises(ValueError, match="cannot read idx file .*t10k-labels"):
        build_dataset("fashion_mnist", "test", root=root)
