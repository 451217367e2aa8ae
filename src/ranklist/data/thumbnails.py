"""The one thumbnail maker: the run report's retrieval grid and TensorBoard sprite, the thumbnails an
index stores for images held in memory, and the item images the server sends all come from here."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ranklist.data.image_decoding import to_rgb


def thumbnail(image: Any, size: int) -> np.ndarray:
    """A PIL image or uint8 tensor [3, H, W] as uint8 [size, size, 3]: scaled to fit with its aspect
    ratio kept and centred on white, so that images of any sizes share one grid."""
    from PIL import Image

    if isinstance(image, torch.Tensor):
        image = Image.fromarray(image.permute(1, 2, 0).contiguous().numpy())
    image = to_rgb(image)
    if max(image.size) > size:
        image.thumbnail((size, size), Image.Resampling.LANCZOS)
    elif max(image.size) < size:  # small images (28 px digits) grow, each pixel a crisp block
        scale = size / max(image.size)
        image = image.resize(
            (max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.Resampling.NEAREST
        )
    canvas = Image.new("RGB", (size, size), "white")
    canvas.paste(image, ((size - image.width) // 2, (size - image.height) // 2))
    return np.asarray(canvas, dtype=np.uint8)
