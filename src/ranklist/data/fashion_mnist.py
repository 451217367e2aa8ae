"""Fashion-MNIST, the easy real sanity set (docs/data.md), from Debian's
dataset-fashion-mnist package: idx files, gzip-compressed, in /usr/share/datasets/fashion-mnist.

Class-disjoint like the benchmarks: classes 0-4 (T-shirt/top, Trouser, Pullover, Dress, Coat) train,
5-9 (Sandal, Shirt, Sneaker, Bag, Ankle boot) test, each drawing on both of the package's files
(their own train/test split is by image, not by class): 35,000 images per half.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from ranklist.data.datasets import ArrayDataset, Transform
from ranklist.data.splits import SPLITS, check_split, dense_labels, training_mask

DEFAULT_ROOT = Path("/usr/share/datasets/fashion-mnist")
FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
TRAIN_CLASSES = 5  # 0..4 train, 5..9 test


def read_idx(path: Path) -> np.ndarray:
    """An idx file of unsigned bytes (magic 0x00 0x00 0x08 ndim, big-endian int32 sizes, data)."""
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as error:
        raise ValueError(f"cannot read idx file {path}: {error}") from error
    if len(data) < 4 or data[:3] != b"\x00\x00\x08":
        raise ValueError(f"{path} is not an idx file of unsigned bytes (magic {data[:4].hex()}, expected 000008xx)")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    if len(data) - offset != int(np.prod(shape)):
        raise ValueError(
            f"{path}: header says shape {shape} ({int(np.prod(shape))} bytes), file holds {len(data) - offset}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape)


def read_fashion_mnist(
    root: Path | None, split: str, transform: Transform | None = None, *, val_fraction: float = 0.2, seed: int = 0
) -> ArrayDataset:
    """Split "train" / "val" / "trainval" / "test" as grey images repeated to 3 channels."""
    check_split(split, "fashion_mnist", SPLITS)
    root = Path(root) if root is not None else DEFAULT_ROOT
    hint = "install it with `apt-get install dataset-fashion-mnist`, or pass its folder as root"
    if not root.is_dir():
        raise FileNotFoundError(f"Fashion-MNIST folder not found: {root} (expected there: {', '.join(FILES)}; {hint})")
    missing = [f for f in FILES if not (root / f).is_file()]
    if missing:
        raise FileNotFoundError(f"Fashion-MNIST folder {root} lacks {', '.join(missing)} ({hint})")
    images = np.concatenate([read_idx(root / FILES[0]), read_idx(root / FILES[2])])
    labels = np.concatenate([read_idx(root / FILES[1]), read_idx(root / FILES[3])]).astype(np.int64)
    if len(images) != len(labels):
        raise ValueError(f"{root}: {len(images)} images but {len(labels)} labels")
    keep = labels >= TRAIN_CLASSES if split == "test" else labels < TRAIN_CLASSES
    if split != "test":
        keep[keep] = training_mask(labels[keep], split, val_fraction, seed)
    dense, names, ids = dense_labels(labels[keep], dict(enumerate(CLASS_NAMES)))
    return ArrayDataset(np.repeat(images[keep][..., None], 3, axis=-1), dense, names, ids, transform)
