"""Hostile image files read through the real folder reader: odd modes decode to the right 8-bit RGB,
damaged files are one ValueError naming the file, odd layouts are handled or refused clearly."""

from __future__ import annotations

import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ranklist.data.generic import read_folder
from ranklist.data.transforms import build_transform, to_uint8_tensor


def _folder(tmp_path: Path, images: dict[str, object]) -> Path:
    """Split layout root/train/<class>/ + root/test/<class>/<name>: the test split holds `images`
    (a PIL image or raw bytes each), the train split one ordinary image."""
    root = tmp_path / "data"
    (root / "train" / "t").mkdir(parents=True)
    Image.new("RGB", (8, 8), (1, 2, 3)).save(root / "train" / "t" / "a.png")
    for rel, image in images.items():
        path = root / "test" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(image, bytes):
            path.write_bytes(image)
        else:
            image.save(path)
    return root


def _decoded(tmp_path: Path, image: object, name: str = "c/x.png") -> torch.Tensor:
    """The uint8 [3, H, W] the reader gives for one image file."""
    dataset = read_folder(_folder(tmp_path, {name: image}), "test")
    return (dataset[0][0] * 255).round().to(torch.uint8)


GRADIENT_16 = (np.arange(64 * 8).reshape(8, 64) * 128).astype(np.uint16)  # 0 .. 65408


def _png_header_only(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk


def _check_16bit_gray(t):
    assert Image.fromarray(GRADIENT_16).mode == "I;16"
    want = torch.from_numpy(np.rint(GRADIENT_16 / 257.0).astype(np.uint8))
    assert torch.equal(t, want.expand(3, -1, -1))  # was all 255 (clipped) before
    return True


DECODES = {
    # case: (image written, check of the decoded uint8 [3, H, W])
    "grayscale_16bit_png": (Image.fromarray(GRADIENT_16), _check_16bit_gray),
    "grayscale_32bit_int_tiff": (Image.fromarray(GRADIENT_16.astype(np.int32)), _check_16bit_gray),
    "grayscale_float_tiff_0_1": (
        Image.fromarray(GRADIENT_16.astype(np.float32) / 65535),
        lambda t: (t[0].float() - torch.from_numpy(GRADIENT_16 / 257.0)).abs().max() <= 1,
    ),
    "grayscale_8bit": (Image.new("L", (5, 4), 77), lambda t: t.shape == (3, 4, 5) and bool((t == 77).all())),
    "grayscale_alpha": (Image.new("LA", (3, 3), (90, 0)), lambda t: bool((t == 90).all())),
    "rgba_transparent": (Image.new("RGBA", (4, 4), (200, 10, 20, 0)), lambda t: t[:, 0, 0].tolist() == [200, 10, 20]),
    "rgba_opaque": (Image.new("RGBA", (4, 4), (1, 2, 3, 255)), lambda t: t[:, 3, 3].tolist() == [1, 2, 3]),
    "palette": (
        Image.new("RGB", (4, 4), (250, 0, 0)).convert("P"),
        lambda t: t[:, 0, 0].tolist()[1:] == [0, 0] and t[0, 0, 0] > 200,
    ),
    "one_bit": (Image.new("1", (6, 2), 1), lambda t: bool((t == 255).all())),
    "one_pixel": (
        Image.new("RGB", (1, 1), (9, 8, 7)),
        lambda t: t.shape == (3, 1, 1) and t.flatten().tolist() == [9, 8, 7],
    ),
    "cmyk_jpeg": (Image.new("CMYK", (8, 8), (0, 255, 255, 0)), lambda t: t[0, 4, 4] > 200 and t[1, 4, 4] < 60),
    "wide_strip": (Image.new("RGB", (300, 1), (5, 5, 5)), lambda t: t.shape == (3, 1, 300)),
}


@pytest.mark.parametrize("image,check", list(DECODES.values()), ids=list(DECODES))
def test_image_modes_decode_to_the_right_rgb(tmp_path, image, check):
    suffix = ".tiff" if "tiff" in _case_id(image) else ".jpg" if image.mode == "CMYK" else ".png"
    if suffix == ".tiff":  # the folder reader lists common suffixes only: decode the file directly
        path = tmp_path / "x.tiff"
        image.save(path)
        from ranklist.data.image_decoding import read_rgb

        decoded = to_uint8_tensor(read_rgb(path))
    else:
        decoded = _decoded(tmp_path, image, f"c/x{suffix}")
    assert decoded.dtype == torch.uint8 and decoded.shape[0] == 3
    assert check(decoded)


def _case_id(image) -> str:
    return next(k for k, v in DECODES.items() if v[0] is image)


def test_16bit_png_through_to_uint8_tensor_directly():
    _check_16bit_gray(to_uint8_tensor(Image.fromarray(GRADIENT_16)))


def _png_bytes() -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def _jpeg_bytes() -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


DAMAGED = {
    "empty_file": (b"", "c/x.png"),
    "text_named_png": (b"this is not an image\n", "c/x.png"),
    "truncated_png": (_png_bytes()[:200], "c/x.png"),
    "truncated_jpeg": (_jpeg_bytes()[:300], "c/x.jpg"),
    "png_header_only": (_png_header_only(16, 16), "c/x.png"),
    "decompression_bomb_header": (_png_header_only(60000, 60000), "c/x.png"),
    "jpeg_bytes_named_gif": (b"\xff\xd8\xff\xe0" + b"\0" * 20, "c/x.gif"),
}


@pytest.mark.parametrize("data,name", list(DAMAGED.values()), ids=list(DAMAGED))
def test_damaged_image_is_one_error_naming_the_file(tmp_path, data, name):
    dataset = read_folder(_folder(tmp_path, {name: data}), "test")
    with pytest.raises(ValueError, match=rf"cannot read image {dataset.paths[0]}: ") as caught:
        dataset[0]
    assert "\n" not in str(caught.value)


def test_mixed_sizes_come_out_at_the_model_size_with_the_real_transforms(tmp_path):
    images = {
        f"c/{i}.png": Image.new("RGB", size, (i * 40, 0, 0))
        for i, size in enumerate([(1, 1), (640, 20), (20, 640), (33, 47), (300, 300)])
    }
    root = _folder(tmp_path, images)
    for train in (True, False):
        dataset = read_folder(
            root, "test", transform=build_transform(train, image_size=24, generator=torch.Generator().manual_seed(0))
        )
        assert {tuple(dataset[i][0].shape) for i in range(len(dataset))} == {(3, 24, 24)}


def test_single_image_classes_and_a_mixed_mode_split(tmp_path):
    images = {
        "a/1.png": Image.new("L", (4, 4), 5),
        "b/1.png": Image.fromarray(GRADIENT_16),
        "b/2.png": Image.new("RGBA", (9, 2)),
        "c/1.jpg": Image.new("RGB", (3, 3)),
    }
    dataset = read_folder(_folder(tmp_path, images), "test")
    assert dataset.labels.tolist() == [0, 1, 1, 2] and dataset.class_names == ["a", "b", "c"]
    assert [tuple(dataset[i][0].shape) for i in range(4)] == [(3, 4, 4), (3, 8, 64), (3, 2, 9), (3, 3, 3)]


def test_palette_with_transparency_decodes_without_warnings(tmp_path):
    image = Image.new("RGB", (4, 4), (10, 200, 10)).convert("P", palette=Image.Palette.ADAPTIVE)
    image.info["transparency"] = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _decoded(tmp_path, image)[:, 0, 0].tolist() == [10, 200, 10]


def test_empty_class_folders_and_non_images_are_refused_by_name(tmp_path):
    (tmp_path / "flat" / "a").mkdir(parents=True)
    (tmp_path / "flat" / "a" / "notes.txt").write_text("x")
    (tmp_path / "flat" / "b.jpg").mkdir()  # a folder named like an image
    with pytest.raises(ValueError, match=rf"no images .* in sub-folders of {tmp_path / 'flat'}"):
        read_folder(tmp_path / "flat", "test")


def test_bad_tensors_given_to_to_uint8_tensor():
    with pytest.raises(ValueError, match=r"image tensors must be uint8 \[3, H, W\], got torch.float32 \(3, 2, 2\)"):
        to_uint8_tensor(torch.zeros(3, 2, 2))
    with pytest.raises(ValueError, match=r"got torch.uint8 \(4, 2, 2\)"):
        to_uint8_tensor(torch.zeros(4, 2, 2, dtype=torch.uint8))
