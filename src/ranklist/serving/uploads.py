"""Uploaded images: checked and decoded, every bad input a 4xx with a message, never a crash.

A limit (ServeLimits) bounds the bytes, the pixels and the number of images of a request, so one
request cannot take the server's memory: every image's size is read from its header before any is
decoded (a per-image and a per-request pixel budget), JPEGs decode at a reduced scale where the
model needs far fewer pixels, images are decoded and turned into the model's input one at a time
(only one full-size image is alive at once), and the freed memory is handed back afterwards.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import io
import struct
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from PIL import Image, UnidentifiedImageError

from ranklist.data.image_decoding import decoded_rgb
from ranklist.data.preprocessing import Preprocessing

ACCEPTED_TYPES = ("image/", "application/octet-stream")  # browsers send image/*; scripts often octet-stream
# A huge upload is shrunk (a JPEG while decoding, at 1/2, 1/4 or 1/8 scale; others right after) only
# while it keeps 4x the model's resize side, so the transform's own resize still does the real work.
SHRINK_MARGIN = 4


@dataclass(frozen=True)
class ServeLimits:
    """The server's limits on uploads, requests and results."""

    max_upload_bytes: int = 10 * 2**20  # per image
    max_files: int = 16  # per request
    max_pixels: int = 40_000_000  # per image, as its header declares
    max_request_pixels: int = 64_000_000  # per request: the pixels its images decode to, all together
    max_k: int = 100
    browse_queries: int = 200  # queries ranked by the browse view (an evenly spaced sample)
    max_batch: int = 32  # images in one forward shared by concurrent requests

    def __post_init__(self) -> None:
        for name in (
            "max_upload_bytes",
            "max_files",
            "max_pixels",
            "max_request_pixels",
            "max_k",
            "browse_queries",
            "max_batch",
        ):
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


@dataclass(frozen=True)
class Upload:
    """One uploaded file: its bytes, name and declared content type."""

    data: bytes
    name: str
    content_type: str | None = None


def _open(upload: Upload, limits: ServeLimits, draft_side: int | None) -> Image.Image:
    """The upload opened lazily (header only), checked, and set to decode at reduced scale if a JPEG
    is far larger than `draft_side` needs."""
    name, data = upload.name, upload.data
    if upload.content_type and not upload.content_type.startswith(ACCEPTED_TYPES):
        raise InputError(415, f"{name}: content type {upload.content_type!r} is not an image (send image/*)")
    if len(data) > limits.max_upload_bytes:
        raise InputError(413, f"{name}: {len(data)} bytes is over the limit of {limits.max_upload_bytes} bytes")
    if not data:
        raise InputError(400, f"{name}: empty file")
    with _decode_errors(name):
        image = Image.open(io.BytesIO(data))
        if image.width * image.height > limits.max_pixels:
            raise InputError(
                413, f"{name}: {image.width}x{image.height} pixels is over the limit of {limits.max_pixels}"
            )
        if draft_side and image.format == "JPEG":
            image.draft(image.mode, (draft_side * SHRINK_MARGIN, draft_side * SHRINK_MARGIN))
        return image


@contextmanager
def _decode_errors(name: str) -> Iterator[None]:
    """Pillow's errors on a damaged or foreign file as InputErrors naming the upload."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except UnidentifiedImageError:
        raise InputError(400, f"{name}: not an image (unrecognised format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(413, f"{name}: too many pixels (decompression limit)") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as error:  # truncated or damaged data
        raise InputError(400, f"{name}: corrupt image ({error})") from None


def decode_image(data: bytes, name: str, content_type: str | None, limits: ServeLimits) -> Image.Image:
    """An upload's bytes as an RGB image at full size, or an InputError (415 type, 413 size, 400 not/corrupt image)."""
    upload = Upload(data, name, content_type)
    image = _open(upload, limits, None)
    with _decode_errors(name):
        image.load()
        return decoded_rgb(image)


def decode_batch(uploads: Sequence[Upload], limits: ServeLimits, preprocessing: Preprocessing) -> torch.Tensor:
    """The uploads as the model's input batch [B, 3, S, S], by its evaluation transform.

    Every header is read and the request's pixel budget checked before anything is decoded; then
    one image at a time is decoded and transformed, so the peak is one full-size image, not B."""
    opened = [_open(upload, limits, preprocessing.resize) for upload in uploads]
    total = sum(image.width * image.height for image in opened)  # after the JPEG draft
    if total > limits.max_request_pixels:
        raise InputError(
            413,
            f"the request's {len(opened)} images decode to {total} pixels, over the per-request "
            f"limit of {limits.max_request_pixels}: send fewer or smaller images",
        )
    transform = preprocessing.transform(train=False)
    inputs = []
    try:
        for upload, image in zip(uploads, opened):
            with _decode_errors(upload.name):
                image.load()
                inputs.append(transform(decoded_rgb(image, preprocessing.resize * SHRINK_MARGIN)))
            image.close()
    finally:
        del opened
        release_memory()
    return torch.stack(inputs)


_LIBC = ctypes.util.find_library("c")


def release_memory() -> None:
    """Hand freed heap pages back to the system (glibc keeps them otherwise: a request's decoded images
    would stay in the server's resident memory until the next one). A no-op elsewhere."""
    try:
        ctypes.CDLL(_LIBC).malloc_trim(0)
    except (OSError, AttributeError, TypeError):
        pass
