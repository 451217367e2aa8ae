"""Two dataset shapes every reader returns: images on disk, or decoded images in memory."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ranklist.data.splits import remap_labels

Transform = Callable[[object], torch.Tensor]


def _default_transform(image: object) -> torch.Tensor:
    from ranklist.data.transforms import to_uint8_tensor

    return to_uint8_tensor(image).float() / 255.0


class ImageFileDataset(Dataset):
    """(image, label) from image files; labels are remapped to 0..C-1 (original ids kept)."""

    def __init__(self, paths: Sequence[Path], labels: np.ndarray, transform: Transform | None = None,
                 class_names: Sequence[str] | None = None) -> None:
        self.paths = [Path(p) for p in paths]
        self.labels, self.class_ids = remap_labels(np.asarray(labels))
        self.class_names = list(class_names) if class_names is not None else [str(c) for c in self.class_ids]
        self.transform = transform or _default_transform

    def __len__(self) -> int:
        return len(self.paths)

    def load_image(self, index: int):
        from PIL import Image, UnidentifiedImageError

        path = self.paths[index]
        try:
            with Image.open(path) as image:
                return image.convert("RGB")
        except (OSError, UnidentifiedImageError) as error:
            raise ValueError(f"cannot read image {path}: {error}") from error

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.load_image(index)), int(self.labels[index])


class ArrayDataset(Dataset):
    """(image, label) from a decoded uint8 array [N, H, W, 3] held in memory (small sets)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: Transform | None = None,
                 class_names: Sequence[str] | None = None) -> None:
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 [N, H, W, 3], got {images.dtype} {images.shape}")
        self.images = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)  # view, no copy
        self.labels, self.class_ids = remap_labels(np.asarray(labels))
        self.class_names = list(class_names) if class_names is not None else [str(c) for c in self.class_ids]
        self.transform = transform or _default_transform

    def __len__(self) -> int:
        return len(self.labels)

    def load_image(self, index: int) -> torch.Tensor:
        return self.images[index]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.images[index]), int(self.labels[index])
