"""The two dataset shapes every reader returns: images on disk, or decoded images in memory.

Items are (float image tensor [3, H, W], int label). `.labels` (np.int64 [N]) holds every item's
label without decoding an image (the sampler and the evaluation read it); `.class_names[label]`
names a label, `.class_ids[label]` is the dataset's own id for it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

Transform = Callable[[object], torch.Tensor]


def _to_float(image: object) -> torch.Tensor:
    """The transform used when none is given: RGB in [0, 1], no resizing."""
    from ranklist.data.transforms import to_uint8_tensor

    return to_uint8_tensor(image).float() / 255.0


class LabelledDataset(Dataset):
    """What both shapes share: labels 0..C-1 checked against C class names, and the transform."""

    def __init__(
        self,
        n_items: int,
        labels: np.ndarray,
        class_names: Sequence[str],
        class_ids: Sequence[object] | None,
        transform: Transform | None,
    ) -> None:
        self.class_names = [str(n) for n in class_names]
        self.class_ids = list(class_ids) if class_ids is not None else list(range(len(self.class_names)))
        if len(self.class_ids) != len(self.class_names):
            raise ValueError(f"{len(self.class_ids)} class ids for {len(self.class_names)} class names")
        labels = np.asarray(labels, dtype=np.int64)
        if labels.shape != (n_items,):
            raise ValueError(f"need one label per item: {n_items} items, labels of shape {labels.shape}")
        if n_items and (labels.min() < 0 or labels.max() >= len(self.class_names)):
            raise ValueError(
                f"labels must lie in 0..{len(self.class_names) - 1} (one per class name), "
                f"got {labels.min()}..{labels.max()}"
            )
        self.labels = labels
        self.transform = transform or _to_float

    def __len__(self) -> int:
        return len(self.labels)


class ImageFileDataset(LabelledDataset):
    """Images read from files on access (PIL), labels given as 0..C-1 with C class names."""

    def __init__(
        self,
        paths: Sequence[Path],
        labels: np.ndarray,
        class_names: Sequence[str],
        class_ids: Sequence[object] | None = None,
        transform: Transform | None = None,
    ) -> None:
        self.paths = [Path(p) for p in paths]
        super().__init__(len(self.paths), labels, class_names, class_ids, transform)

    def load_image(self, index: int):
        """The item's image as an 8-bit RGB PIL image (any mode, 16-bit scaled); an unreadable file is
        an error naming it."""
        from ranklist.data.image_decoding import read_rgb

        return read_rgb(self.paths[index])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.load_image(index)), int(self.labels[index])


class ArrayDataset(LabelledDataset):
    """Decoded uint8 images [N, H, W, 3] held in memory (small sets: no decoding per step);
    transforms receive uint8 tensors [3, H, W] (views, no copies)."""

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        class_names: Sequence[str],
        class_ids: Sequence[object] | None = None,
        transform: Transform | None = None,
    ) -> None:
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 [N, H, W, 3], got {images.dtype} {images.shape}")
        self.images = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
        super().__init__(len(images), labels, class_names, class_ids, transform)

    def load_image(self, index: int) -> torch.Tensor:
        return self.images[index]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.images[index]), int(self.labels[index])
