"""train.cache_frozen: the frozen trunk's output for every training image, computed once.

With the stem and first blocks frozen (model.freeze_blocks), their output for an image never
changes while training (weights and BN statistics fixed, no stochastic depth), so the run computes
it once, before the first step, and each step starts at the first trainable block (the demo's
recipe: a 0.86x to 0.91x step, but lower Recall@1, so the demo does not use it; docs/results.md, fifth round).

What changes is where the random crop is taken: on the cached map of the uncropped training image
(paper recipe: the resize x resize image), at the trunk's stride s (EfficientNet-Lite with 1 to 4
frozen blocks: s = 4 px), so the crop offsets are 0, s, 2s, ... pixels instead of every pixel.
Inside the crop the map equals the trunk's output on the pixel crop at that offset; its outer cells
differ: the cached map saw the neighbouring pixels where the trunk on the pixel crop sees padding. Flips (data.hflip)
draw from a second cache of the flipped images (twice the memory), as the transform draws them:
crop first, then flip. The "resize" recipe crops nothing: there the cached step equals the image
step. The "rrc" recipe draws a new scale per item and cannot be cached.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ranklist.data import Preprocessing
from ranklist.models import EmbeddingModel


class CachedTrunkSet(Dataset):
    """The training split as cached trunk maps [N, C, S, S] (and of the flipped images): items are
    (a random side x side crop of an item's map, its label); `.labels` as every training split."""

    def __init__(self, maps: torch.Tensor, flipped: torch.Tensor | None, labels: np.ndarray, side: int) -> None:
        if flipped is not None and flipped.shape != maps.shape:
            raise ValueError(f"the flipped maps {tuple(flipped.shape)} differ from the maps {tuple(maps.shape)}")
        if not 1 <= side <= min(maps.shape[-2:]):
            raise ValueError(f"crop side {side} does not fit maps of {tuple(maps.shape[-2:])}")
        self.maps, self.flipped, self.side = maps, flipped, side
        self.labels = np.asarray(labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        # Torch's default generator, as the image transforms draw (the run seeds it, checkpoints keep it).
        top, left = (int(torch.randint(extent - self.side + 1, (1,))) for extent in self.maps.shape[-2:])
        maps = self.maps if self.flipped is None or float(torch.rand(())) >= 0.5 else self.flipped
        return maps[index, :, top : top + self.side, left : left + self.side], int(self.labels[index])

    @property
    def nbytes(self) -> int:
        return sum(m.numel() * m.element_size() for m in (self.maps, self.flipped) if m is not None)


def _trunk_shape(model: EmbeddingModel, side: int) -> tuple[int, int]:
    """(channels, side) of the trunk's map for side x side images."""
    was_training = model.training
    model.eval()  # the probe must not touch BN statistics
    with torch.no_grad():
        shape = model.backbone.frozen_trunk(torch.zeros(1, 3, side, side, device=next(model.parameters()).device)).shape
    model.train(was_training)  # the model's own train() keeps model.freeze_bn and the frozen blocks in eval mode
    return shape[1], shape[-1]


def cache_trunk(
    model: EmbeddingModel,
    train_split: Dataset,
    preprocessing: Preprocessing,
    *,
    flips: bool,
    batch_size: int,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> CachedTrunkSet:
    """The frozen trunk's maps of every training image (and of its mirror image where `flips`),
    computed as the training forward computes them (its precision, the model's device), kept on the CPU.
    A cache larger than half the available memory is an error that says so."""
    backbone = model.backbone
    if not callable(getattr(backbone, "frozen_trunk", None)):
        raise ValueError(
            f"train.cache_frozen: backbone {model.config['backbone']!r} cannot run its frozen blocks apart"
        )
    uncropped = copy.copy(train_split)  # the same items, before the random crop and flip
    uncropped.transform = preprocessing.uncropped_transform()
    channels, full = _trunk_shape(model, uncropped.transform.image_size)
    side = _trunk_shape(model, preprocessing.image_size)[1]
    _check_memory(len(uncropped) * channels * full * full * (2 if flips else 1) * _element_size(backbone))
    device, was_training = next(model.parameters()).device, model.training
    model.train()  # the training forward's precision (the frozen modules stay in eval mode)
    maps: list[torch.Tensor] = []
    mirrored: list[torch.Tensor] = []
    try:
        with torch.no_grad():
            for images, _ in DataLoader(uncropped, batch_size=batch_size):
                images = images.to(device, memory_format=memory_format)
                maps.append(backbone.frozen_trunk(images).cpu())
                if flips:
                    mirrored.append(backbone.frozen_trunk(images.flip(-1)).cpu())
    finally:
        model.train(was_training)
    if not maps:
        raise ValueError("train.cache_frozen: the training split holds no images")
    return CachedTrunkSet(torch.cat(maps), torch.cat(mirrored) if flips else None, train_split.labels, side)


def _element_size(backbone: torch.nn.Module) -> int:
    dtype = getattr(backbone, "frozen_dtype", None) or next(backbone.parameters()).dtype
    return torch.empty((), dtype=dtype).element_size()


def _check_memory(needed: int) -> None:
    available = _available_memory()
    if available is not None and needed > available // 2:
        raise ValueError(
            f"train.cache_frozen: the cache would take {needed / 2**30:.1f} GiB, more than half of the "
            f"{available / 2**30:.1f} GiB available; set train.cache_frozen=false"
        )


def _available_memory() -> int | None:
    """Bytes the kernel says are available (Linux), None where it does not say."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None
