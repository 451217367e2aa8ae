"""The offline benchmark: emoji drawn by four artists (docs/data.md).

Class = one emoji; its instances = the Google (Noto), Twitter (Twemoji), OpenMoji and Microsoft
Fluent (flat) drawings. Built once from four npm packages (`npm pack`), joined by code point
sequence (upper case, FE0F dropped), skin-tone variants left out, SVGs rendered with cairosvg,
everything composited on white at SIZE x SIZE, and cached as one uint8 array plus a manifest
holding the array's SHA-256. A cache or download that fails its check (interrupted, corrupt) is
rebuilt or fetched again, never used.

    python -m ranklist.data.emoji [--cache DIR] [--packages DIR]   # build or verify; print counts
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ranklist.atomic import atomic_path, atomic_write_text, file_digest
from ranklist.data.datasets import ArrayDataset, Transform
from ranklist.data.splits import (
    SPLITS,
    TRAIN_SPLITS,
    carve_classes,
    check_split,
    dense_labels,
    training_mask,
)

# 64 px: the Google and Twitter packages ship 64 px drawings (the largest both have), so every
# style is stored at their native size; training at 64-96 px resizes on the fly.
SIZE = 64
FORMAT_VERSION = 2
PACKAGES = {
    "google": "emoji-datasource-google@16.0.0",
    "twitter": "emoji-datasource-twitter@16.0.0",
    "openmoji": "openmoji@17.0.0",
    "fluent": "@iconify-json/fluent-emoji-flat@1.2.6",
}
STYLES = tuple(PACKAGES)
SVG_STYLES = ("openmoji", "fluent")
SKIN_TONES = {"1F3FB", "1F3FC", "1F3FD", "1F3FE", "1F3FF"}
ATTRIBUTION = (
    "Emoji artwork: Google Noto Emoji (Apache-2.0), Twitter Twemoji by Twitter, Inc. and other "
    "contributors (CC-BY-4.0), OpenMoji, the open-source emoji and icon project (CC-BY-SA-4.0), "
    "Microsoft Fluent Emoji (MIT)."
)
SPLIT_SEED = 0  # the fixed train/test class split of the benchmark (every run compares on it)


def default_cache_dir() -> Path:
    """$RANKLIST_CACHE/emoji, or ~/.cache/ranklist/emoji."""
    return Path(os.environ.get("RANKLIST_CACHE", Path.home() / ".cache" / "ranklist")) / "emoji"


def emoji_key(codes: str) -> str:
    """Join key of a code point sequence: upper case, '-' separated, variation selector FE0F dropped."""
    parts = codes.replace("_", "-").upper().split("-")
    return "-".join(p for p in parts if p and p != "FE0F")


def tarball_name(spec: str) -> str:
    """The file `npm pack NAME@VERSION` writes: scope '@' dropped, '/' -> '-'."""
    name, version = spec.rsplit("@", 1)
    return f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"


@dataclass(frozen=True)
class EmojiData:
    """The decoded cache; image i is class i // len(STYLES) drawn in style i % len(STYLES)."""

    images: np.ndarray  # [N, SIZE, SIZE, 3] uint8
    labels: np.ndarray  # [N] class index into class_names
    styles: np.ndarray  # [N] index into STYLES
    class_names: list[str]
    class_codes: list[str]


# --- fetching -------------------------------------------------------------------------------------


def tarball_ok(path: Path) -> bool:
    """A complete, uncorrupted .tgz (gzip's CRC and the tar structure are read to the end)."""
    if not path.is_file():
        return False
    try:
        with tarfile.open(path, "r:gz") as archive:
            for _ in archive:
                pass
        return True
    except (tarfile.TarError, OSError, EOFError):
        return False


def fetch_packages(packages_dir: Path) -> dict[str, Path]:
    """style -> tarball in packages_dir, running `npm pack` for any absent or broken one.

    npm writes into a temporary folder; only a finished tarball is renamed into place, so an
    interrupted download leaves nothing that looks complete.
    """
    packages_dir.mkdir(parents=True, exist_ok=True)
    tarballs = {}
    for style, spec in PACKAGES.items():
        tarball = packages_dir / tarball_name(spec)
        if not tarball_ok(tarball):
            tarball.unlink(missing_ok=True)
            if not shutil.which("npm"):
                raise RuntimeError(f"{tarball} is missing and fetching it needs `npm` (npm pack {spec})")
            with tempfile.TemporaryDirectory(dir=packages_dir) as tmp:
                done = subprocess.run(
                    ["npm", "pack", spec, "--silent"], cwd=tmp, capture_output=True, text=True, check=False
                )
                packed = list(Path(tmp).glob("*.tgz"))
                if done.returncode != 0 or len(packed) != 1 or not tarball_ok(packed[0]):
                    raise RuntimeError(f"npm pack {spec} failed (exit {done.returncode}): {done.stderr.strip()[-500:]}")
                os.replace(packed[0], tarball)
        tarballs[style] = tarball
    return tarballs


# --- reading and rendering ------------------------------------------------------------------------


def _read_datasource(tarball: Path, style: str, drawings: dict[str, bytes], catalogue: dict[str, dict] | None) -> None:
    """emoji-datasource-<style>: package/img/<style>/64/<codes>.png; emoji.json (names, codes) into
    `catalogue` when given, keeping the entries both datasource styles draw."""
    folder = f"package/img/{style}/64/"
    with tarfile.open(tarball, "r:gz") as archive:
        for member in archive:
            if member.name.startswith(folder) and member.name.endswith(".png"):
                drawings[emoji_key(Path(member.name).stem)] = archive.extractfile(member).read()
            elif member.name == "package/emoji.json" and catalogue is not None:
                for entry in json.load(archive.extractfile(member)):
                    if entry.get("has_img_google") and entry.get("has_img_twitter"):
                        name = entry.get("name") or entry["short_name"]
                        catalogue[emoji_key(entry["unified"])] = {"name": name.lower(), "codes": entry["unified"]}


def _read_openmoji(tarball: Path, drawings: dict[str, bytes]) -> None:
    """openmoji: package/color/svg/<codes>.svg."""
    with tarfile.open(tarball, "r:gz") as archive:
        for member in archive:
            if member.name.startswith("package/color/svg/") and member.name.endswith(".svg"):
                drawings[emoji_key(Path(member.name).stem)] = archive.extractfile(member).read()


def _read_fluent(tarball: Path, drawings: dict[str, bytes]) -> None:
    """@iconify-json/fluent-emoji-flat: chars.json (codes -> icon name), icons.json (icon bodies,
    aliases pointing to a parent icon; width/height per icon or set-wide, default 16)."""
    with tarfile.open(tarball, "r:gz") as archive:
        icons = json.load(archive.extractfile("package/icons.json"))
        chars = json.load(archive.extractfile("package/chars.json"))
    aliases = icons.get("aliases", {})
    for codes, icon_name in chars.items():
        icon = icons["icons"].get(icon_name) or icons["icons"].get(aliases.get(icon_name, {}).get("parent"))
        if icon is None:
            continue
        width, height = icon.get("width", icons.get("width", 16)), icon.get("height", icons.get("height", 16))
        drawings[emoji_key(codes)] = (
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
            f'width="{width}" height="{height}">{icon["body"]}</svg>'
        ).encode()


def read_drawings(tarballs: dict[str, Path]) -> tuple[dict[str, dict[str, bytes]], dict[str, dict]]:
    """(style -> join key -> PNG or SVG bytes, join key -> {"name", "codes"} from emoji.json)."""
    drawings: dict[str, dict[str, bytes]] = {style: {} for style in STYLES}
    catalogue: dict[str, dict] = {}
    _read_datasource(tarballs["google"], "google", drawings["google"], catalogue)
    _read_datasource(tarballs["twitter"], "twitter", drawings["twitter"], None)
    _read_openmoji(tarballs["openmoji"], drawings["openmoji"])
    _read_fluent(tarballs["fluent"], drawings["fluent"])
    return drawings, catalogue


def on_white(png: bytes, size: int = SIZE) -> np.ndarray:
    """A (possibly transparent) PNG composited on white, as uint8 [size, size, 3]."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        rgba = image.convert("RGBA")
    if rgba.size != (size, size):
        rgba = rgba.resize((size, size), Image.Resampling.LANCZOS)
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))


def render(drawing: bytes, style: str, size: int = SIZE) -> np.ndarray:
    """One drawing (SVG or PNG bytes) on white, as uint8 [size, size, 3]."""
    if style in SVG_STYLES:
        import cairosvg

        drawing = cairosvg.svg2png(bytestring=drawing, output_width=size, output_height=size)
    return on_white(drawing, size)


def join_classes(drawings: dict[str, dict[str, bytes]], catalogue: dict[str, dict]) -> tuple[list[str], dict[str, int]]:
    """Sorted join keys drawn by all four styles, skin tones left out; and what was left out why."""
    toned = {k for k in catalogue if SKIN_TONES & set(k.split("-"))}
    lacking = {style: {k for k in catalogue if k not in toned and k not in drawings[style]} for style in STYLES}
    keys = sorted(k for k in catalogue if k not in toned and not any(k in lack for lack in lacking.values()))
    left_out = {
        "catalogue_entries": len(catalogue),
        "skin_tone_entries": len(toned),
        **{f"not_drawn_by_{style}": len(lack) for style, lack in lacking.items()},
    }
    return keys, left_out


# --- the cache ------------------------------------------------------------------------------------


def build_emoji(cache_dir: Path | str | None = None, *, packages_dir: Path | str | None = None) -> Path:
    """Fetch (unless packages_dir already holds the four tarballs), join, render and cache the
    benchmark in cache_dir (images.npy, then manifest.json written last); returns cache_dir."""
    start = time.perf_counter()
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    tarballs = fetch_packages(Path(packages_dir) if packages_dir is not None else cache_dir / "downloads")
    drawings, catalogue = read_drawings(tarballs)
    keys, left_out = join_classes(drawings, catalogue)
    if not keys:
        raise RuntimeError(f"no emoji is drawn by all four styles in {sorted(map(str, tarballs.values()))}")
    images = np.stack([render(drawings[style][key], style) for key in keys for style in STYLES])
    (cache_dir / "manifest.json").unlink(missing_ok=True)  # no manifest = no valid cache while writing
    with atomic_path(cache_dir / "images.npy") as tmp, open(tmp, "wb") as handle:
        np.save(handle, images)
    manifest = {
        "format": FORMAT_VERSION,
        "size": SIZE,
        "styles": list(STYLES),
        "packages": PACKAGES,
        "layout": "image i = class i // len(styles), drawn in style i % len(styles)",
        "num_classes": len(keys),
        "num_images": len(images),
        "shape": list(images.shape),
        "left_out": left_out,
        "build_seconds": round(time.perf_counter() - start, 1),
        "images_sha256": file_digest(cache_dir / "images.npy"),
        "attribution": ATTRIBUTION,
        "class_codes": [catalogue[k]["codes"] for k in keys],
        "class_names": [catalogue[k]["name"] for k in keys],
    }
    atomic_write_text(cache_dir / "manifest.json", json.dumps(manifest, indent=1))
    return cache_dir


def cache_problem(cache_dir: Path) -> str | None:
    """Why the cache in cache_dir cannot be used (None: it can)."""
    try:
        manifest = json.loads((cache_dir / "manifest.json").read_text())
    except FileNotFoundError:
        return "no manifest.json (never built, or the build was interrupted)"
    except (OSError, ValueError) as error:
        return f"unreadable manifest.json ({error})"
    if manifest.get("format") != FORMAT_VERSION or manifest.get("packages") != PACKAGES:
        return "built by another version (format or packages differ)"
    try:
        if file_digest(cache_dir / "images.npy") != manifest.get("images_sha256"):
            return "images.npy does not match its checksum"
    except OSError as error:
        return f"unreadable images.npy ({error})"
    return None


def ensure_emoji(cache_dir: Path | str | None = None, *, packages_dir: Path | str | None = None) -> Path:
    """The cache folder (default $RANKLIST_CACHE/emoji or ~/.cache/ranklist/emoji), built, or
    rebuilt when it fails its checks, from the tarballs in packages_dir (default: cache_dir /
    downloads, fetched with npm when absent or broken)."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if cache_problem(cache_dir) is not None:
        build_emoji(cache_dir, packages_dir=packages_dir)
    return cache_dir


def load_emoji(cache_dir: Path | str | None = None, *, packages_dir: Path | str | None = None) -> EmojiData:
    """The decoded benchmark (built first if needed; a cache that fails its checksum is rebuilt)."""
    cache_dir = ensure_emoji(cache_dir, packages_dir=packages_dir)
    manifest = json.loads((cache_dir / "manifest.json").read_text())
    images = np.load(cache_dir / "images.npy", allow_pickle=False)
    n_styles, n_classes = len(manifest["styles"]), manifest["num_classes"]
    if images.shape != (n_classes * n_styles, manifest["size"], manifest["size"], 3):
        raise ValueError(f"{cache_dir / 'images.npy'} has shape {images.shape}, its manifest says {manifest['shape']}")
    return EmojiData(
        images=images,
        labels=np.repeat(np.arange(n_classes), n_styles),
        styles=np.tile(np.arange(n_styles), n_classes),
        class_names=manifest["class_names"],
        class_codes=manifest["class_codes"],
    )


# --- the dataset ----------------------------------------------------------------------------------


def read_emoji(
    root: Path | str | None,
    split: str,
    transform: Transform | None = None,
    *,
    val_fraction: float = 0.2,
    seed: int = 0,
    packages_dir: Path | str | None = None,
) -> ArrayDataset:
    """A split of the benchmark. The train/test halves of the classes are fixed (SPLIT_SEED);
    seed and val_fraction choose the class-disjoint "val" carve of the training half.
    root: the cache folder (default_cache_dir() when None; built on first use)."""
    check_split(split, "emoji", SPLITS)
    data = load_emoji(root, packages_dir=packages_dir)
    trainval, test = carve_classes(data.labels, 0.5, SPLIT_SEED)
    keep = np.isin(data.labels, test if split == "test" else trainval)
    if split in TRAIN_SPLITS:
        keep[keep] = training_mask(data.labels[keep], split, val_fraction, seed)
    labels, names, ids = dense_labels(data.labels[keep], dict(enumerate(data.class_names)))
    return ArrayDataset(data.images[keep], labels, names, [data.class_codes[i] for i in ids], transform)


def main(argv: list[str] | None = None) -> int:
    """Build the emoji benchmark's cache from the command line; return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m ranklist.data.emoji", description=__doc__.splitlines()[0])
    parser.add_argument("--cache", help="cache folder (default $RANKLIST_CACHE/emoji or ~/.cache/ranklist/emoji)")
    parser.add_argument("--packages", help="folder holding the four npm tarballs (default: <cache>/downloads)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    folder = ensure_emoji(args.cache, packages_dir=args.packages)
    manifest = json.loads((folder / "manifest.json").read_text())
    seconds = round(time.perf_counter() - start, 1)
    splits = {split: len(np.unique(read_emoji(folder, split).labels)) for split in SPLITS}
    print(
        json.dumps(
            {
                "cache": str(folder),
                "classes": manifest["num_classes"],
                "images": manifest["num_images"],
                "styles": manifest["styles"],
                "classes_per_split": splits,
                "left_out": manifest["left_out"],
                "build_seconds": manifest["build_seconds"],
                "seconds": seconds,
            },
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
