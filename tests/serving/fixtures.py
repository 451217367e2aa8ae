"""A tiny labelled image folder and a small_cnn checkpoint for the export, index and serving tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from ranklist.models import build_model, save_model

COLOURS = [
    (220, 40, 40),
    (40, 160, 60),
    (40, 80, 220),
    (230, 180, 30),
    (150, 60, 180),
    (30, 170, 170),
    (240, 120, 30),
    (90, 90, 90),
]


def draw(class_index: int, variant: int, size: int = 48) -> Image.Image:
    """An image of class `class_index`: its colour and shape, jittered by `variant` (real RGB photos-like
    content with edges and noise, in several sizes)."""
    rng = np.random.default_rng(1000 * class_index + variant)
    side = size + 8 * (variant % 3)
    image = Image.new("RGB", (side, side + 4 * (variant % 2)), (245, 245, 240))
    pen = ImageDraw.Draw(image)
    box = [
        int(rng.integers(2, 10)),
        int(rng.integers(2, 10)),
        side - int(rng.integers(2, 10)),
        side - int(rng.integers(2, 10)),
    ]
    colour = tuple(
        int(c) for c in np.clip(np.array(COLOURS[class_index % len(COLOURS)]) + rng.integers(-20, 20, 3), 0, 255)
    )
    [pen.ellipse, pen.rectangle, pen.polygon][class_index % 3](
        box if class_index % 3 < 2 else [(box[0], box[3]), ((box[0] + box[2]) // 2, box[1]), (box[2], box[3])],
        fill=colour,
    )
    noise = rng.normal(0, 8, (image.height, image.width, 3))
    return Image.fromarray(np.clip(np.asarray(image, dtype=np.float64) + noise, 0, 255).astype(np.uint8))


def make_folder(root: Path, classes: int = 8, per_class: int = 4) -> Path:
    """root/<class>/<i>.png (and a few .jpg): the one-folder layout (classes carved into train/test)."""
    for c in range(classes):
        folder = root / f"class_{c}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            draw(c, i).save(folder / (f"{i}.jpg" if i == 0 else f"{i}.png"))
    return root


def make_checkpoint(path: Path, backbone: str = "small_cnn", seed: int = 0, **options) -> Path:
    torch.manual_seed(seed)
    model = build_model(backbone, embedding_dim=options.pop("embedding_dim", 8), pretrained=False, **options)
    save_model(model, path)
    return path
