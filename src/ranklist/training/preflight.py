"""Checks that stop a run before its first iteration: everything knowable then is checked then.

Each raises a ConfigError (a one-line user error) naming the bad value.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import Dataset

from ranklist.data.splits import class_keys, shared_labels
from ranklist.training.config import ConfigError

if TYPE_CHECKING:
    from ranklist.training.run import RunSplits


def resolve_device(name: str, what: str = "train.device") -> torch.device:
    """A device setting (`what`: train.device, a command's --device) as a torch device that exists here."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"{what} {name!r} is not a device name (cpu, cuda, cuda:1, mps, ...)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{what} is {name!r} but this machine has no usable CUDA device (use cpu)")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"{what} is {name!r} but there are {torch.cuda.device_count()} CUDA devices")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{what} is {name!r} but MPS is not available here")
    return device


def process_device(name: str, world: int, local_rank: int) -> str:
    """train.device for this process. Under torchrun (world > 1) `cuda` is this node's GPU number
    LOCAL_RANK; a numbered GPU (cuda:0) would put every process on that one GPU and is refused."""
    try:
        device = torch.device(name)
    except RuntimeError:
        return name  # resolve_device names the bad value
    if world <= 1 or device.type != "cuda":
        return name
    if device.index is not None:
        raise ConfigError(
            f"train.device {name!r} would put all {world} processes on one GPU; use train.device=cuda "
            "(each process takes cuda:LOCAL_RANK)"
        )
    return f"cuda:{local_rank}"


def check_class_disjoint(splits: RunSplits) -> None:
    """Test classes must be unseen in training (the zero-shot protocol of deep metric learning)."""
    train = set(class_keys(splits.train)) | (set(class_keys(splits.val)) if splits.val is not None else set())
    for name, split in (("test queries", splits.queries), ("gallery", splits.gallery)):
        shared = sorted(train & set(class_keys(split))) if split is not None else []
        if shared:
            raise ConfigError(
                f"{len(shared)} classes of the {name} are also training classes (e.g. {shared[:3]}); "
                "evaluation must be on unseen classes"
            )


def check_ks(ks: Sequence[int], splits: RunSplits) -> None:
    """Recall@K needs K candidates per query: the gallery's size, or the test split's minus the query."""
    if splits.queries is None:  # a tuning fold: validation only (Recall@1)
        return _check_val(splits)
    candidates = len(splits.gallery) if splits.gallery is not None else len(splits.queries) - 1
    where = (
        f"the gallery's {len(splits.gallery)} items"
        if splits.gallery is not None
        else f"{len(splits.queries)} test items minus the query"
    )
    if max(ks) > candidates:
        raise ConfigError(
            f"eval.ks {list(ks)} asks for Recall@{max(ks)} but each query has only {candidates} candidates ({where})"
        )
    _check_val(splits)


def check_findable(splits: RunSplits) -> None:
    """Every metric needs queries with something to find: a shared class between the queries and the
    gallery, or a class with two images in a self-retrieval split. Found before training, not after."""
    if splits.queries is not None and splits.gallery is not None:
        try:
            shared_labels(splits.queries, splits.gallery)
        except ValueError as error:
            raise ConfigError(f"the test queries cannot be scored: {error}") from None
    elif splits.queries is not None:
        _check_pairs(splits.queries, "test")
    if splits.val is not None:
        _check_pairs(splits.val, "validation")


def _check_pairs(split: Dataset, name: str) -> None:
    counts = np.bincount(np.asarray(split.labels))
    if len(counts) and counts.max() < 2:
        raise ConfigError(
            f"every class of the {name} split has a single image ({len(counts)} classes): no query has another "
            "image of its class to find; give classes at least 2 images"
        )


def _check_val(splits: RunSplits) -> None:
    if splits.val is not None and len(splits.val) < 2:
        raise ConfigError(
            f"the validation split has {len(splits.val)} items; "
            "Recall@1 needs at least 2 (lower data.val_fraction or set it to 0)"
        )


def check_images(splits: Iterable[tuple[str, Dataset]]) -> None:
    """Every image file of every split opens as an image (its header only: cheap, no decoding)."""
    from PIL import Image, UnidentifiedImageError

    for name, split in splits:
        for path in getattr(split, "paths", ()):
            try:
                with Image.open(path) as image:
                    image.size  # noqa: B018 - the header is parsed on open; size is read from it
            except (OSError, UnidentifiedImageError) as error:
                raise ConfigError(f"cannot read image {path} of the {name} split: {error}") from None
