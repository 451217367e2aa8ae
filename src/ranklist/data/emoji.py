"""The offline benchmark: emoji drawn by four artists (../shared/docs/DATA.md).

Class = one emoji; its instances = the Google (Noto), Twitter (Twemoji), OpenMoji and Microsoft
Fluent (flat) drawings. Built once from four npm packages (`npm pack`), joined by code point
sequence (upper case, FE0F dropped), skin-tone variants left out, SVGs rendered with cairosvg,
everything composited on white at SIZE x SIZE, and cached as one uint8 array plus a manifest with
its SHA-256. A cache that fails its check (interrupted build, corruption) is rebuilt, never used.

    python -m ranklist.data.emoji          # build (or verify) the cache and print its counts
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ranklist.atomic import atomic_path, atomic_write_text

SIZE = 64
FORMAT_VERSION = 1
PACKAGES = {
    "google": "emoji-datasource-google@16.0.0",
    "twitter": "emoji-datasource-twitter@16.0.0",
    "openmoji": "openmoji@17.0.0",
    "fluent": "@iconify-json/fluent-emoji-flat@1.2.6",
}
STYLES = tuple(PACKAGES)
SKIN_TONES = {"1F3FB", "1F3FC", "1F3FD", "1F3FE", "1F3FF"}
ATTRIBUTION = (
    "Emoji artwork: Google Noto Emoji (Apache-2.0), Twitter Twemoji (CC-BY-4.0), "
    "OpenMoji (CC-BY-SA-4.0), Microsoft Fluent Emoji (MIT)."
)


def default_cache_dir() -> Path:
    return Path(os.environ.get("RANKLIST_CACHE", Path.home() / ".cache" / "ranklist")) / "emoji"


def emoji_key(codes: str) -> str:
    """Join key of a code point sequence: upper case, '-' separated, variation selector FE0F dropped."""
    parts = codes.replace("_", "-").upper().split("-")
    return "-".join(p for p in parts if p and p != "FE0F")


@dataclass(frozen=True)
class EmojiData:
    images: np.ndarray  # [N, SIZE, SIZE, 3] uint8
    labels: np.ndarray  # [N] class index into class_names
    styles: np.ndarray  # [N] index into STYLES
    class_names: list[str]
    class_codes: list[str]


def _fetch_packages(download_dir: Path) -> dict[str, Path]:
    """`npm pack` each package (a no-op for tarballs already complete); returns style -> tarball."""
    download_dir.mkdir(parents=True, exist_ok=True)
    tarballs = {}
    for style, spec in PACKAGES.items():
        name, version = spec.rsplit("@", 1)
        tarball = download_dir / f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"
        if not _tarball_ok(tarball):
            tarball.unlink(missing_ok=True)
            with tempfile.TemporaryDirectory(dir=download_dir) as tmp:
                done = subprocess.run(["npm", "pack", spec, "--silent"], cwd=tmp, capture_output=True, text=True)
                packed = list(Path(tmp).glob("*.tgz"))
                if done.returncode != 0 or len(packed) != 1:
                    raise RuntimeError(f"npm pack {spec} failed (exit {done.returncode}): {done.stderr.strip()[-500:]}")
                os.replace(packed[0], tarball)  # complete downloads only ever get the final name
        tarballs[style] = tarball
    return tarballs


def _tarball_ok(path: Path) -> bool:
    if not path.is_file():
        return False
    try:
        with tarfile.open(path, "r:gz") as archive:
            for _ in archive:
                pass
        return True
    except (tarfile.TarError, OSError, EOFError):
        return False


def _on_white(png: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        rgba = image.convert("RGBA")
        if rgba.size != (SIZE, SIZE):
            rgba = rgba.resize((SIZE, SIZE), Image.Resampling.LANCZOS)
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))


def _render_svg(svg: bytes) -> np.ndarray:
    import cairosvg

    return _on_white(cairosvg.svg2png(bytestring=svg, output_width=SIZE, output_height=SIZE))


def _read_styles(tarballs: dict[str, Path]) -> tuple[dict[str, dict[str, bytes]], dict[str, str], dict[str, str]]:
    """Per style: join key -> raw image (PNG or SVG bytes); plus key -> name and key -> codes."""
    members: dict[str, dict[str, bytes]] = {style: {} for style in STYLES}
    names: dict[str, str] = {}
    codes: dict[str, str] = {}
    for style in ("google", "twitter"):
        folder = f"package/img/{style}/64/"
        with tarfile.open(tarballs[style], "r:gz") as archive:
            for member in archive:
                if member.name == "package/emoji.json" and style == "google":
                    for entry in json.load(archive.extractfile(member)):
                        key = emoji_key(entry["unified"])
                        if entry.get("has_img_google") and entry.get("has_img_twitter"):
                            names[key] = (entry.get("name") or entry["short_name"]).lower()
                            codes[key] = entry["unified"]
                elif member.name.startswith(folder) and member.name.endswith(".png"):
                    members[style][emoji_key(Path(member.name).stem)] = archive.extractfile(member).read()
    with tarfile.open(tarballs["openmoji"], "r:gz") as archive:
        for member in archive:
            if member.name.startswith("package/color/svg/") and member.name.endswith(".svg"):
                members["openmoji"][emoji_key(Path(member.name).stem)] = archive.extractfile(member).read()
    with tarfile.open(tarballs["fluent"], "r:gz") as archive:
        icons = json.load(archive.extractfile("package/icons.json"))
        chars = json.load(archive.extractfile("package/chars.json"))
    for char_codes, icon_name in chars.items():
        icon = icons["icons"].get(icon_name)
        if icon is None and icon_name in icons.get("aliases", {}):
            icon = icons["icons"].get(icons["aliases"][icon_name].get("parent"))
        if icon is None:
            continue
        width, height = icon.get("width", icons.get("width", 16)), icon.get("height", icons.get("height", 16))
        svg = (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
               f'width="{width}" height="{height}">{icon["body"]}</svg>')
        members["fluent"][emoji_key(char_codes)] = svg.encode()
    return members, names, codes


def build_emoji(cache_dir: Path | None = None, *, download_dir: Path | None = None) -> Path:
    """Fetch, join, render and cache the benchmark; returns the cache folder."""
    cache_dir = Path(cache_dir or default_cache_dir())
    tarballs = _fetch_packages(download_dir or cache_dir / "downloads")
    members, names, codes = _read_styles(tarballs)
    keys = sorted(
        key for key in names
        if all(key in members[style] for style in STYLES) and not SKIN_TONES & set(key.split("-"))
    )
    if not keys:
        raise RuntimeError(f"no emoji is drawn by all four styles in {sorted(tarballs.values())}")
    images = np.empty((len(keys) * len(STYLES), SIZE, SIZE, 3), dtype=np.uint8)
    for i, key in enumerate(keys):
        for s, style in enumerate(STYLES):
            raw = members[style][key]
            images[i * len(STYLES) + s] = _render_svg(raw) if style in ("openmoji", "fluent") else _on_white(raw)
    with atomic_path(cache_dir / "images.npy") as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, images)
    manifest = {
        "format": FORMAT_VERSION, "size": SIZE, "styles": list(STYLES), "packages": PACKAGES,
        "class_codes": [codes[k] for k in keys], "class_names": [names[k] for k in keys],
        "images_sha256": _sha256(cache_dir / "images.npy"), "shape": list(images.shape),
        "attribution": ATTRIBUTION,
    }
    atomic_write_text(cache_dir / "manifest.json", json.dumps(manifest, indent=1))  # written last: marks completion
    return cache_dir


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _cache_valid(cache_dir: Path) -> bool:
    try:
        manifest = json.loads((cache_dir / "manifest.json").read_text())
        return (manifest.get("format") == FORMAT_VERSION and manifest.get("packages") == PACKAGES
                and manifest["images_sha256"] == _sha256(cache_dir / "images.npy"))
    except (OSError, ValueError, KeyError):
        return False


def ensure_emoji(cache_dir: Path | str | None = None) -> Path:
    """The cache folder, built (or rebuilt, if it fails its checksum) when needed."""
    cache_dir = Path(cache_dir or default_cache_dir())
    if not _cache_valid(cache_dir):
        (cache_dir / "manifest.json").unlink(missing_ok=True)
        if not shutil.which("npm"):
            raise RuntimeError("building the emoji benchmark needs `npm` (to fetch its four packages)")
        build_emoji(cache_dir)
    return cache_dir


def load_emoji(cache_dir: Path | str | None = None) -> EmojiData:
    cache_dir = ensure_emoji(cache_dir)
    manifest = json.loads((cache_dir / "manifest.json").read_text())
    images = np.load(cache_dir / "images.npy")
    n_styles = len(manifest["styles"])
    n_classes = len(manifest["class_names"])
    return EmojiData(
        images=images,
        labels=np.repeat(np.arange(n_classes), n_styles),
        styles=np.tile(np.arange(n_styles), n_classes),
        class_names=manifest["class_names"],
        class_codes=manifest["class_codes"],
    )


if __name__ == "__main__":
    import time

    start = time.perf_counter()
    folder = ensure_emoji()
    data = load_emoji(folder)
    print(json.dumps({"cache": str(folder), "classes": len(data.class_names), "images": int(len(data.images)),
                      "styles": list(STYLES), "seconds": round(time.perf_counter() - start, 1)}))
