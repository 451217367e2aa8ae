"""Tiny datasets written in each benchmark's exact on-disk format (made by the tests, not committed)."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image


def write_image(path: Path, colour: int = 0, size: int = 8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), (colour % 256, 50, 100)).save(path)
    return path


def make_cub(root: Path, per_class: int = 2) -> Path:
    images, labels, classes = [], [], []
    for c in range(1, 201):
        name = f"{c:03d}.Bird_{c}"
        classes.append(f"{c} {name}")
        for k in range(per_class):
            rel = f"{name}/img_{k}.jpg"
            write_image(root / "images" / rel, c)
            images.append(rel)
            labels.append(c)
    (root / "images.txt").write_text("".join(f"{i + 1} {p}\n" for i, p in enumerate(images)))
    (root / "image_class_labels.txt").write_text("".join(f"{i + 1} {c}\n" for i, c in enumerate(labels)))
    (root / "classes.txt").write_text("\n".join(classes) + "\n")
    return root


def make_cars(root: Path, per_class: int = 2) -> Path:
    from scipy.io import savemat

    dtype = [
        ("relative_im_path", "O"),
        ("bbox_x1", "O"),
        ("bbox_y1", "O"),
        ("bbox_x2", "O"),
        ("bbox_y2", "O"),
        ("class", "O"),
        ("test", "O"),
    ]
    rows = []
    for c in range(1, 197):
        for k in range(per_class):
            rel = f"car_ims/{c:03d}{k:02d}.jpg"
            write_image(root / rel, c)
            rows.append((rel, 1, 1, 7, 7, np.array([[c]], dtype=np.uint8), k % 2))
    annotations = np.array([rows], dtype=dtype)
    class_names = np.array([[f"Car model {c}" for c in range(1, 197)]], dtype=object)
    savemat(root / "cars_annos.mat", {"annotations": annotations, "class_names": class_names})
    return root


def make_sop(root: Path) -> Path:
    for listing, classes in (("Ebay_train.txt", range(1, 7)), ("Ebay_test.txt", range(7, 12))):
        lines = ["image_id class_id super_class_id path"]
        for c in classes:
            for k in range(2):
                rel = f"bicycle_final/{c}_{k}.JPG"
                write_image(root / rel, c)
                lines.append(f"{len(lines)} {c} 1 {rel}")
        (root / listing).write_text("\n".join(lines) + "\n")
    return root


def make_inshop(root: Path) -> Path:
    rows = []
    for item in range(1, 9):
        for k, status in enumerate(["train", "train"] if item <= 4 else ["query", "gallery", "gallery"]):
            rel = f"img/WOMEN/Dresses/id_{item:08d}/{k:02d}_1_front.jpg"
            write_image(root / rel, item)
            rows.append(f"{rel} id_{item:08d} {status}")
    (root / "list_eval_partition.txt").write_text(
        f"{len(rows)}\nimage_name item_id evaluation_status\n" + "\n".join(rows) + "\n"
    )
    return root


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def make_fashion_mnist(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 40), ("t10k", 20)):
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 255, (n, 28, 28)))
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    return root


def _png(colour: tuple[int, int, int, int], size: int = 64) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", (size, size), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def _tar(path: Path, files: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


EMOJI_CODES = ["1F600", "1F601", "2764-FE0F", "1F1E8-1F1F1", "1F468-200D-2708-FE0F", "1F603", "1F604", "1F605"]


def make_emoji_packages(folder: Path) -> list[str]:
    """Fake versions of the four npm tarballs (their real paths and JSON shapes, tiny contents):
    8 emoji in every style, plus a skin-tone variant and one emoji that OpenMoji lacks (both must
    be left out). Returns the codes expected in the benchmark, in join-key order."""
    folder.mkdir(parents=True, exist_ok=True)
    codes = EMOJI_CODES + ["1F44D-1F3FB", "1F602"]
    entries = [
        {
            "unified": c,
            "name": f"EMOJI {c}",
            "short_name": c.lower(),
            "image": f"{c.lower()}.png",
            "has_img_google": True,
            "has_img_twitter": True,
        }
        for c in codes
    ]
    google = {"package/emoji.json": json.dumps(entries).encode()}
    twitter = {}
    for i, c in enumerate(codes):
        google[f"package/img/google/64/{c.lower()}.png"] = _png((200, i * 30, 0, 255))
        twitter[f"package/img/twitter/64/{c.lower()}.png"] = _png((0, i * 30, 200, 128))
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 72 72"><circle cx="36" cy="36" r="30" fill="#fc0"/></svg>'
    )
    openmoji = {f"package/color/svg/{c}.svg": svg.encode() for c in codes if c != "1F602"}
    icons = {
        "prefix": "fluent-emoji-flat",
        "width": 32,
        "height": 32,
        "aliases": {"alias-smile": {"parent": "smile"}},
        "icons": {f"icon-{i}": {"body": '<rect width="32" height="16" fill="#36c"/>'} for i in range(len(codes))},
    }
    icons["icons"]["smile"] = icons["icons"].pop("icon-0")
    chars = {c.lower(): f"icon-{i}" for i, c in enumerate(codes)}
    chars[codes[0].lower()] = "alias-smile"
    fluent = {"package/icons.json": json.dumps(icons).encode(), "package/chars.json": json.dumps(chars).encode()}
    _tar(folder / "emoji-datasource-google-16.0.0.tgz", google)
    _tar(folder / "emoji-datasource-twitter-16.0.0.tgz", twitter)
    _tar(folder / "openmoji-17.0.0.tgz", openmoji)
    _tar(folder / "iconify-json-fluent-emoji-flat-1.2.6.tgz", fluent)
    return sorted(EMOJI_CODES, key=lambda c: c.replace("-FE0F", ""))
