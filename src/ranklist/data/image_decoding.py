"""Image files to 8-bit RGB, whatever their mode: what every reader and transform decodes with.

Pillow's convert("RGB") clips samples wider than 8 bits instead of scaling them, so a 16-bit
grayscale PNG (mode "I;16") came out pure white; those modes are scaled here.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

# What a damaged or foreign image file raises while Pillow opens or decodes it.
_DECODE_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, SyntaxError, EOFError, struct.error)


def to_rgb(image):
    """A PIL image of any mode as 8-bit RGB.

    Integer grayscale wider than 8 bits ("I;16*", and "I", which is how Pillow opens some 16-bit
    files) is scaled from 0..65535; float grayscale ("F") from 0..1, or clipped to 0..255 when it
    exceeds 1. Alpha is dropped (the colour under a transparent pixel is kept), palettes expanded.
    """
    from PIL import Image

    if image.mode.startswith("I;16") or image.mode == "I":
        gray = np.clip(np.asarray(image, dtype=np.float64), 0, 65535) / 257.0
    elif image.mode == "F":
        gray = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0, posinf=255.0, neginf=0.0)
        gray = gray * 255.0 if gray.size and gray.max() <= 1.0 else gray
        gray = np.clip(gray, 0, 255)
    else:
        return image.convert("RGB")
    return Image.fromarray(np.rint(gray).astype(np.uint8), mode="L").convert("RGB")


SHRINK_FIRST = ("RGB", "RGBA", "L", "LA")  # modes whose box reduction equals reducing their RGB conversion
ORIENTATION = "orientation"  # the key of a decoded image's info holding its EXIF orientation (1..8)
EXIF_ORIENTATION_TAG = 0x0112


def decoded_rgb(image, shrink_to: int | None = None):
    """A loaded PIL image as 8-bit RGB (to_rgb) with its EXIF orientation kept in info["orientation"].

    The pixels are left as stored: whether a model sees them turned upright is its preprocessing
    record's choice (`exif_orientation`), applied by the transform (`upright`). `shrink_to`: a box
    reduction by the largest integer factor that keeps the shorter side >= shrink_to (a server's
    bound on the memory of one huge upload; results then differ slightly from the full-size image)."""
    factor = min(image.size) // shrink_to if shrink_to else 0
    if factor > 1 and image.mode in SHRINK_FIRST:  # no full-size RGB copy beside the decoded image
        rgb = to_rgb(image.reduce(factor))
    else:
        rgb = to_rgb(image)
        rgb = rgb.reduce(factor) if factor > 1 else rgb
    try:
        orientation = int(image.getexif().get(EXIF_ORIENTATION_TAG, 1))
    except (*_DECODE_ERRORS, TypeError):  # a damaged EXIF block: the pixels are still good
        orientation = 1
    rgb.info[ORIENTATION] = orientation if 1 <= orientation <= 8 else 1
    return rgb


def upright(image):
    """A decoded image turned as its EXIF orientation says (phone photos are stored sideways)."""
    from PIL import Image

    turns = {
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_270,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_90,
    }
    turn = turns.get(image.info.get(ORIENTATION, 1))
    return image if turn is None else image.transpose(turn)


def read_rgb(path: str | Path):
    """The image file at `path` as an 8-bit RGB PIL image (decoded_rgb); an unreadable file is one
    ValueError naming it."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
            return decoded_rgb(image)
    except (*_DECODE_ERRORS, Image.DecompressionBombError) as error:
        detail = " ".join(str(error).split()) or type(error).__name__
        raise ValueError(f"cannot read image {path}: {detail}") from error
