"""Readers of the paper's four benchmarks and of generic image collections (SPEC section 6).

Each reads its dataset's standard on-disk layout and returns the items of one split. Benchmarks
split classes as the literature does ("trainval" = the training classes, "test" = the unseen ones);
"val" is a seeded, class-disjoint carve of the training classes (val_fraction of them) and "train"
the rest, so model selection never sees the test classes. Labels are remapped to 0..C-1 per split.
On a complete copy, counts must match the published ones unless allow_partial=True.
"""

from __future__ import annotations

import csv
import gzip
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ranklist.data.datasets import ArrayDataset, ImageFileDataset, Transform
from ranklist.data.splits import TRAIN_SPLITS, carve_classes, select_training_split

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"}

# Published sizes: split -> (images, classes).
EXPECTED = {
    "cub200": {"trainval": (5864, 100), "test": (5924, 100)},
    "cars196": {"trainval": (8054, 98), "test": (8131, 98)},
    "sop": {"trainval": (59551, 11318), "test": (60502, 11316)},
    "inshop": {"trainval": (25882, 3997), "query": (14218, None), "gallery": (12612, None)},
}


def _require(root: Path, files: list[str], dataset: str) -> None:
    if not root.is_dir():
        raise FileNotFoundError(f"{dataset} folder not found: {root} (expected there: {', '.join(files)})")
    missing = [f for f in files if not (root / f).exists()]
    if missing:
        raise FileNotFoundError(f"{dataset} folder {root} lacks {', '.join(missing)} (expected: {', '.join(files)})")


def _check_count(dataset: str, split: str, source: Path, labels: np.ndarray, allow_partial: bool) -> None:
    expected = EXPECTED[dataset].get(split)
    if expected is None or allow_partial:
        return
    got = (len(labels), len(np.unique(labels)) if expected[1] is not None else None)
    if got != expected:
        raise ValueError(
            f"{source}: {dataset} split {split!r} has {got[0]} images in {got[1]} classes, expected "
            f"{expected[0]} in {expected[1]} (pass allow_partial=True for a partial copy)"
        )


def _training_split(split: str, dataset: str, valid: tuple[str, ...]) -> None:
    if split not in valid:
        raise ValueError(f"unknown split {split!r} for {dataset}; choose one of {valid}")


def _finish(dataset, split, source, paths, labels, names, transform, allow_partial, val_fraction, seed):
    """Count check on the whole published split, then the train/val carve."""
    labels = np.asarray(labels, dtype=np.int64)
    check_split = "trainval" if split in TRAIN_SPLITS else split
    _check_count(dataset, check_split, source, labels, allow_partial)
    keep = select_training_split(labels, split, val_fraction, seed) if split in TRAIN_SPLITS else np.ones(len(labels), bool)
    paths = [p for p, k in zip(paths, keep) if k]
    labels = labels[keep]
    class_names = [names[c] for c in np.unique(labels)] if names else None
    return ImageFileDataset(paths, labels, transform, class_names)


def read_cub200(root: Path, split: str, transform: Transform | None = None, *, allow_partial: bool = False,
                val_fraction: float = 0.2, seed: int = 0) -> ImageFileDataset:
    """CUB-200-2011: classes 1-100 train, 101-200 test."""
    _training_split(split, "cub200", TRAIN_SPLITS + ("test",))
    files = ["images.txt", "image_class_labels.txt", "classes.txt", "images"]
    _require(root, files, "CUB-200-2011")
    paths = dict(line.split(maxsplit=1) for line in (root / "images.txt").read_text().splitlines() if line.strip())
    classes = dict(line.split() for line in (root / "image_class_labels.txt").read_text().splitlines() if line.strip())
    names = {int(i): n for i, n in (line.split(maxsplit=1) for line in (root / "classes.txt").read_text().splitlines() if line.strip())}
    ids = sorted(paths, key=int)
    labels = np.array([int(classes[i]) for i in ids])
    keep = labels <= 100 if split != "test" else labels > 100
    return _finish("cub200", split, root / "images.txt", [root / "images" / paths[i].strip() for i, k in zip(ids, keep) if k],
                   labels[keep], names, transform, allow_partial, val_fraction, seed)


def read_cars196(root: Path, split: str, transform: Transform | None = None, *, allow_partial: bool = False,
                 val_fraction: float = 0.2, seed: int = 0) -> ImageFileDataset:
    """CARS196 (cars_annos.mat + car_ims/): classes 1-98 train, 99-196 test (the DML split)."""
    from scipy.io import loadmat

    _training_split(split, "cars196", TRAIN_SPLITS + ("test",))
    _require(root, ["cars_annos.mat", "car_ims"], "CARS196")
    mat = loadmat(root / "cars_annos.mat")
    annotations = mat["annotations"][0]
    names = {i + 1: str(n[0]) for i, n in enumerate(mat["class_names"][0])} if "class_names" in mat else None
    paths = [root / str(a["relative_im_path"][0]) for a in annotations]
    labels = np.array([int(a["class"][0][0]) for a in annotations])
    keep = labels <= 98 if split != "test" else labels > 98
    return _finish("cars196", split, root / "cars_annos.mat", [p for p, k in zip(paths, keep) if k], labels[keep],
                   names, transform, allow_partial, val_fraction, seed)


def read_sop(root: Path, split: str, transform: Transform | None = None, *, allow_partial: bool = False,
             val_fraction: float = 0.2, seed: int = 0) -> ImageFileDataset:
    """Stanford Online Products: Ebay_train.txt / Ebay_test.txt (image_id class_id super_class_id path)."""
    _training_split(split, "sop", TRAIN_SPLITS + ("test",))
    listing = "Ebay_test.txt" if split == "test" else "Ebay_train.txt"
    _require(root, ["Ebay_train.txt", "Ebay_test.txt"], "Stanford Online Products")
    rows = [line.split() for line in (root / listing).read_text().splitlines()[1:] if line.strip()]
    return _finish("sop", split, root / listing, [root / r[3] for r in rows], [int(r[1]) for r in rows],
                   None, transform, allow_partial, val_fraction, seed)


def read_inshop(root: Path, split: str, transform: Transform | None = None, *, allow_partial: bool = False,
                val_fraction: float = 0.2, seed: int = 0) -> ImageFileDataset:
    """In-shop Clothes: list_eval_partition.txt (count, header, then image_name item_id status).

    Query and gallery share one label numbering (the test items' ids, sorted), so they can be
    compared; "test" is not a split here: evaluate "query" against "gallery".
    """
    _training_split(split, "inshop", TRAIN_SPLITS + ("query", "gallery"))
    _require(root, ["list_eval_partition.txt", "img"], "In-shop Clothes")
    lines = (root / "list_eval_partition.txt").read_text().splitlines()[2:]
    rows = [line.split() for line in lines if line.strip()]
    status = "train" if split in TRAIN_SPLITS else split
    item_ids = sorted({r[1] for r in rows if r[2] in ("query", "gallery")}) if status != "train" else sorted({r[1] for r in rows if r[2] == "train"})
    index = {item: i for i, item in enumerate(item_ids)}
    chosen = [r for r in rows if r[2] == status]
    labels = np.array([index[r[1]] for r in chosen])
    dataset = _finish("inshop", split, root / "list_eval_partition.txt", [root / r[0] for r in chosen], labels,
                      None, transform, allow_partial, val_fraction, seed)
    if status != "train":  # keep the shared numbering: undo the per-split remap
        dataset.labels = dataset.class_ids[dataset.labels]
        dataset.class_names = [item_ids[i] for i in range(len(item_ids))]
    return dataset


def _generic_split(labels: np.ndarray, split: str, test_fraction: float, val_fraction: float, seed: int) -> np.ndarray:
    _training_split(split, "a generic dataset", TRAIN_SPLITS + ("test",))
    trainval, test = carve_classes(labels, test_fraction, seed)
    if split == "test":
        return np.isin(labels, test)
    inside = np.isin(labels, trainval)
    mask = np.zeros(len(labels), bool)
    mask[inside] = select_training_split(labels[inside], split, val_fraction, seed + 1)
    return mask


def read_folder(root: Path, split: str, transform: Transform | None = None, *, test_fraction: float = 0.5,
                val_fraction: float = 0.2, seed: int = 0) -> ImageFileDataset:
    """One sub-folder per class; the classes are split class-disjointly (seeded): test_fraction of
    them for "test", val_fraction of the rest for "val"."""
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root} (expected one sub-folder of images per class)")
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir())
    paths, labels = [], []
    for label, folder in enumerate(class_dirs):
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                paths.append(path)
                labels.append(label)
    if not paths:
        raise ValueError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in the class folders of {root}")
    labels = np.array(labels)
    keep = _generic_split(labels, split, test_fraction, val_fraction, seed)
    names = [d.name for d in class_dirs]
    return ImageFileDataset([p for p, k in zip(paths, keep) if k], labels[keep], transform,
                            [names[c] for c in np.unique(labels[keep])])


def read_csv(root: Path, split: str, transform: Transform | None = None, *, test_fraction: float = 0.5,
             val_fraction: float = 0.2, seed: int = 0) -> ImageFileDataset:
    """A CSV file of path,label[,split] rows (paths relative to the file's folder; a header row is
    skipped). With a split column its values choose the items; otherwise classes are split as
    read_folder does."""
    if not root.is_file():
        raise FileNotFoundError(f"CSV file not found: {root} (expected rows path,label[,split])")
    rows = [r for r in csv.reader(root.read_text().splitlines()) if r]
    if rows and rows[0][0].strip().lower() == "path":
        rows = rows[1:]
    try:
        labels = np.array([int(r[1]) for r in rows])
    except (IndexError, ValueError) as error:
        raise ValueError(f"{root}: every row must be path,label[,split] with an integer label ({error})") from error
    paths = [root.parent / r[0].strip() for r in rows]
    if rows and all(len(r) > 2 for r in rows):
        keep = np.array([r[2].strip() == split for r in rows])
        if not keep.any():
            raise ValueError(f"{root}: no row has split {split!r}; splits present: {sorted({r[2].strip() for r in rows})}")
    else:
        keep = _generic_split(labels, split, test_fraction, val_fraction, seed)
    return ImageFileDataset([p for p, k in zip(paths, keep) if k], labels[keep], transform)


def read_fashion_mnist(root: Path, split: str, transform: Transform | None = None, *,
                       val_fraction: float = 0.2, seed: int = 0) -> ArrayDataset:
    """Fashion-MNIST from Debian's dataset-fashion-mnist (idx .gz): classes 0-4 train, 5-9 test,
    taken from both of its files (its own train/test split is by image, not by class)."""
    _training_split(split, "fashion_mnist", TRAIN_SPLITS + ("test",))
    files = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    if not root.is_dir():
        raise FileNotFoundError(f"Fashion-MNIST folder not found: {root} (install it with `apt-get install dataset-fashion-mnist`)")
    _require(root, files, "Fashion-MNIST")

    def idx(name: str) -> np.ndarray:
        data = gzip.decompress((root / name).read_bytes())
        dims = data[3]
        shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
        return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)

    images = np.concatenate([idx(files[0]), idx(files[2])])
    labels = np.concatenate([idx(files[1]), idx(files[3])]).astype(np.int64)
    keep = labels >= 5 if split == "test" else labels < 5
    images, labels = images[keep], labels[keep]
    if split != "test":
        inner = select_training_split(labels, split, val_fraction, seed)
        images, labels = images[inner], labels[inner]
    names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    return ArrayDataset(np.repeat(images[..., None], 3, axis=-1), labels, transform, [names[c] for c in np.unique(labels)])


def read_emoji(root: Path | None, split: str, transform: Transform | None = None, *,
               val_fraction: float = 0.2, seed: int = 0) -> ArrayDataset:
    """The offline emoji benchmark (DATA.md): a seeded half of the classes for training (carved
    into train/val), the unseen half for testing. root: the cache folder (built if missing)."""
    from ranklist.data.emoji import load_emoji

    _training_split(split, "emoji", TRAIN_SPLITS + ("test",))
    data = load_emoji(root)
    trainval, test = carve_classes(np.unique(data.labels), 0.5, seed=0)  # fixed split of the benchmark
    if split == "test":
        keep = np.isin(data.labels, test)
    else:
        keep = np.isin(data.labels, trainval)
        keep[keep] = select_training_split(data.labels[keep], split, val_fraction, seed)
    labels = data.labels[keep]
    return ArrayDataset(data.images[keep], labels, transform, [data.class_names[c] for c in np.unique(labels)])


READERS: dict[str, Callable[..., object]] = {
    "cub200": read_cub200, "cars196": read_cars196, "sop": read_sop, "inshop": read_inshop,
    "folder": read_folder, "csv": read_csv, "fashion_mnist": read_fashion_mnist, "emoji": read_emoji,
}
DEFAULT_ROOTS = {"fashion_mnist": "/usr/share/datasets/fashion-mnist"}


def build_dataset(name: str, split: str, *, root: str | Path | None = None, transform: Transform | None = None, **options):
    """The items of `split` of dataset `name` (see READERS), read from `root`."""
    if name not in READERS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(READERS)}")
    if root is None and name not in ("emoji",) and name not in DEFAULT_ROOTS:
        raise ValueError(f"dataset {name!r} needs a root folder (data.root)")
    path = Path(root) if root is not None else (Path(DEFAULT_ROOTS[name]) if name in DEFAULT_ROOTS else None)
    return READERS[name](path, split, transform, **options)
