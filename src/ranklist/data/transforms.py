"""Image transforms without torchvision: the paper's and the TPAMI-era crops, and per-backbone
normalisation (docs/data.md). They take a PIL image or a uint8 tensor [3, H, W] (the fast path of
the in-memory sets) and return a float tensor [3, image_size, image_size].

Recipes:
  "paper"  train: resize to resize x resize, random image_size crop, horizontal flip;
           test: the same resize, centre crop (the paper's 256 -> 227).
  "rrc"    train: random-resized crop (area fraction in rrc_scale, aspect ratio in [3/4, 4/3]) to
           image_size, horizontal flip; test: shorter side resized to `resize`, centre crop.
  "resize" resize to image_size x image_size (train: plus the flip), no cropping.

Randomness: from `generator` when given (single-process use: every DataLoader worker would get a
copy of it and draw the same crops), else from torch's default generator, which DataLoader seeds
differently in each worker and torch.manual_seed seeds in the main process; so a seeded run is
reproducible either way.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Normalization:
    """Pixel normalisation: (pixels in [0, 1] x scale, in `channels` order - mean) / std, per channel."""

    scale: float = 1.0
    channels: str = "RGB"  # RGB | BGR
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def __post_init__(self) -> None:
        if self.channels not in ("RGB", "BGR"):
            raise ValueError(f"normalization channels must be 'RGB' or 'BGR', got {self.channels!r}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0 or self.scale <= 0:
            raise ValueError(f"normalization needs 3 means, 3 positive stds and a positive scale, got {self}")
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))


NORMALIZATIONS: dict[str, Normalization] = {
    # BN-Inception (Caffe weights as converted to PyTorch): BGR, 0-255, per-channel mean
    # (B, G, R) = (104, 117, 128) subtracted, std 1.
    "bn_inception": Normalization(255.0, "BGR", (104.0, 117.0, 128.0), (1.0, 1.0, 1.0)),
    # TF-Lite EfficientNet-Lite: (x * 255 - 127) / 128.
    "efficientnet_lite": Normalization(255.0, "RGB", (127.0,) * 3, (128.0,) * 3),
    "imagenet": Normalization(1.0, "RGB", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "none": Normalization(),
}


def normalization(value: str | Normalization) -> Normalization:
    """A name of NORMALIZATIONS, or a Normalization record as it is."""
    if isinstance(value, Normalization):
        return value
    if value not in NORMALIZATIONS:
        raise ValueError(f"unknown normalization {value!r}; choose one of {sorted(NORMALIZATIONS)}")
    return NORMALIZATIONS[value]


RECIPES = ("paper", "rrc", "resize")


def to_uint8_tensor(image: object) -> torch.Tensor:
    """A PIL image (any mode, converted to RGB) or a uint8 tensor [3, H, W] as a uint8 tensor [3, H, W]."""
    if isinstance(image, torch.Tensor):
        if image.dtype != torch.uint8 or image.dim() != 3 or image.shape[0] != 3:
            raise ValueError(f"image tensors must be uint8 [3, H, W], got {image.dtype} {tuple(image.shape)}")
        return image
    from ranklist.data.image_decoding import to_rgb

    array = np.asarray(to_rgb(image), dtype=np.uint8)  # PIL image, any mode (16-bit scaled, not clipped)
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


def resize(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bilinear, antialiased resize of a float [3, H, W] tensor."""
    if image.shape[-2:] == (height, width):
        return image
    return F.interpolate(image[None], size=(height, width), mode="bilinear", antialias=True, align_corners=False)[0]


def _randint(high: int, generator: torch.Generator | None) -> int:
    return int(torch.randint(high, (1,), generator=generator)) if high > 0 else 0


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


class Normalize:
    """Scale, reorder (BGR) and normalise a [3, H, W] image tensor as a backbone expects."""

    def __init__(self, value: str | Normalization) -> None:
        record = normalization(value)
        self.scale, self.bgr = record.scale, record.channels == "BGR"
        self.mean = torch.tensor(record.mean).view(3, 1, 1)
        self.std = torch.tensor(record.std).view(3, 1, 1)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        """image: float [3, H, W] RGB in [0, 1]."""
        if self.bgr:
            image = image.flip(0)
        return (image * self.scale - self.mean) / self.std


@dataclass
class ImageTransform:
    """resize / crop / flip, then normalise. train=False is deterministic (centre crop)."""

    train: bool
    image_size: int
    resize: int
    normalization: str | Normalization = "none"
    recipe: str = "paper"
    hflip: bool = True
    rrc_scale: tuple[float, float] = (0.08, 1.0)  # the Inception-style crop's usual range
    generator: torch.Generator | None = None
    exif_orientation: bool = False  # turn decoded files upright by their EXIF orientation first

    def __post_init__(self) -> None:
        if self.recipe not in RECIPES:
            raise ValueError(f"unknown transform recipe {self.recipe!r}; choose one of {RECIPES}")
        if self.image_size < 1 or self.resize < self.image_size:
            raise ValueError(f"need 1 <= image_size <= resize, got image_size={self.image_size}, resize={self.resize}")
        if not 0 < self.rrc_scale[0] <= self.rrc_scale[1] <= 1:
            raise ValueError(f"rrc_scale must satisfy 0 < low <= high <= 1, got {self.rrc_scale}")
        self.normalize = Normalize(self.normalization)

    def __call__(self, image: object) -> torch.Tensor:
        if self.exif_orientation and not isinstance(image, torch.Tensor):
            from ranklist.data.image_decoding import upright

            image = upright(image)
        x = to_uint8_tensor(image).float() / 255.0
        size = self.image_size
        if self.recipe == "resize":
            x = resize(x, size, size)
        elif self.recipe == "rrc" and self.train:
            x = resize(self._random_resized_crop(x), size, size)
        elif self.recipe == "rrc":  # shorter side to `resize`, aspect ratio kept, centre crop
            height, width = x.shape[-2:]
            scale = self.resize / min(height, width)
            x = _centre_crop(resize(x, max(size, round(height * scale)), max(size, round(width * scale))), size)
        elif self.train:  # the paper's: resize x resize, then a random crop
            x = resize(x, self.resize, self.resize)
            top, left = (_randint(self.resize - size + 1, self.generator) for _ in range(2))
            x = x[:, top : top + size, left : left + size]
        else:
            x = _centre_crop(resize(x, self.resize, self.resize), size)
        if self.train and self.hflip and float(torch.rand((), generator=self.generator)) < 0.5:
            x = x.flip(-1)
        return self.normalize(x)

    def _random_resized_crop(self, x: torch.Tensor) -> torch.Tensor:
        """Area fraction in rrc_scale, aspect ratio in [3/4, 4/3] (log-uniform); centre crop fallback."""
        height, width = x.shape[-2:]
        area = height * width
        for _ in range(10):
            target = area * _uniform(*self.rrc_scale, self.generator)
            ratio = math.exp(_uniform(math.log(3 / 4), math.log(4 / 3), self.generator))
            w = round(math.sqrt(target * ratio))
            h = round(math.sqrt(target / ratio))
            if 0 < w <= width and 0 < h <= height:
                top = _randint(height - h + 1, self.generator)
                left = _randint(width - w + 1, self.generator)
                return x[:, top : top + h, left : left + w]
        return _centre_crop(x, min(height, width))


def _centre_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    top, left = (x.shape[-2] - size) // 2, (x.shape[-1] - size) // 2
    return x[:, top : top + size, left : left + size]


def default_resize(image_size: int) -> int:
    """The paper's ratio: 256 for 227 crops."""
    return round(image_size * 256 / 227)


def build_transform(
    train: bool,
    *,
    image_size: int,
    resize: int | None = None,
    normalization: str | Normalization = "none",
    recipe: str = "paper",
    hflip: bool = True,
    rrc_scale: tuple[float, float] = (0.08, 1.0),
    generator: torch.Generator | None = None,
) -> Callable[[object], torch.Tensor]:
    """A transform of `recipe` (see the module docstring), then `normalization` (NORMALIZATIONS).

    resize defaults to round(image_size * 256 / 227), the paper's ratio (256 for 227 crops).
    hflip=False keeps orientation (where mirror images are other classes, e.g. left/right arrows).
    """
    resize = resize or default_resize(image_size)
    return ImageTransform(train, image_size, resize, normalization, recipe, hflip, tuple(rrc_scale), generator)
