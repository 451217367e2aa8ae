"""Uploaded images: checked and decoded, every bad input a 4xx with a message, never a crash.

A limit (ServeLimits) bounds the bytes, the pixels and the number of images of a request, so one
request cannot take the server's memory.
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from ranklist.data.image_decoding import to_rgb

ACCEPTED_TYPES = ("image/", "application/octet-stream")  # browsers send image/*; scripts often octet-stream


@dataclass(frozen=True)
class ServeLimits:
    max_upload_bytes: int = 10 * 2**20  # per image
    max_files: int = 16  # per request
    max_pixels: int = 40_000_000  # per decoded image
    max_k: int = 100
    browse_queries: int = 200  # queries ranked by the browse view (an evenly spaced sample)

    def __post_init__(self) -> None:
        for name in ("max_upload_bytes", "max_files", "max_pixels", "max_k", "browse_queries"):
            if getattr(self, name) < 1:
                raise ValueError(f"serve limit {name} must be >= 1, got {getattr(self, name)}")

    @property
    def max_request_bytes(self) -> int:
        return self.max_upload_bytes * self.max_files + 2**16  # the multipart framing besides the files


class InputError(Exception):
    """A request the server refuses: an HTTP status and a one-line reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def decode_image(data: bytes, name: str, content_type: str | None, limits: ServeLimits) -> Image.Image:
    """An upload's bytes as an RGB image, or an InputError (415 type, 413 size, 400 not/corrupt image)."""
    if content_type and not content_type.startswith(ACCEPTED_TYPES):
        raise InputError(415, f"{name}: content type {content_type!r} is not an image (send image/*)")
    if len(data) > limits.max_upload_bytes:
        raise InputError(413, f"{name}: {len(data)} bytes is over the limit of {limits.max_upload_bytes} bytes")
    if not data:
        raise InputError(400, f"{name}: empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.width * image.height > limits.max_pixels:
                raise InputError(413, f"{name}: {image.width}x{image.height} pixels is over the limit of {limits.max_pixels}")
            image.load()
            return to_rgb(image)  # 16-bit grayscale scaled, not clipped to white
    except UnidentifiedImageError:
        raise InputError(400, f"{name}: not an image (unrecognised format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(413, f"{name}: too many pixels (decompression limit)") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as error:  # truncated or damaged data
        raise InputError(400, f"{name}: corrupt image ({error})") from None
