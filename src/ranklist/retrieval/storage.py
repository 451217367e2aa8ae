"""An index on disk: one folder written whole under a temporary name, then renamed into place.

    PATH/index.faiss     the faiss index
    PATH/meta.json       {"format": 3, "kind", "dim", "count", "model", "class_names", "source", ...,
                          "files": {name: SHA-256 of each file above and below}}
    PATH/items.npz       ids, labels, paths (those the index has)
    PATH/thumbnails.npy  uint8 [N, T, T, 3], for images without a file (optional)

Loading checks every file against its recorded SHA-256 and the counts against each other: a damaged
index is refused by name, never searched (faiss reads flipped bytes as vectors and answers with
nonsense scores). Saving refuses to replace anything that is not an index (a user's folder, a run
folder, a file, a folder holding other files beside an index), and replaces an index only when told to.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ranklist.atomic import file_digest
from ranklist.models.fingerprint import ModelFingerprint
from ranklist.retrieval.index import FORMAT, EmbeddingIndex, Items

INDEX_FILES = ("index.faiss", "meta.json", "items.npz", "thumbnails.npy")
LOAD_ERRORS = (OSError, ValueError, KeyError, TypeError, RuntimeError, zipfile.BadZipFile)


def is_index(path: str | Path) -> bool:
    """Whether `path` is an index folder (ours: index.faiss beside a meta.json with a format)."""
    path = Path(path)
    if not (path / "index.faiss").is_file() or not (path / "meta.json").is_file():
        return False
    try:
        return "format" in json.loads((path / "meta.json").read_text())
    except (OSError, ValueError):
        return False


def check_target(path: Path, replace: bool) -> None:
    """Raise unless `path` may receive an index: absent, an empty folder, or an index and `replace`."""
    if not os.path.lexists(path) or (path.is_dir() and not path.is_symlink() and not any(path.iterdir())):
        return
    if path.is_symlink():
        raise ValueError(
            f"{path} is a symbolic link: refusing to replace what it points to; give the real folder "
            f"({os.path.realpath(path)}) or another output path"
        )
    if not is_index(path):
        raise ValueError(
            f"{path} exists and is not an index (a file or a folder of other things): "
            "refusing to replace it; choose another output path"
        )
    others = sorted(name for name in os.listdir(path) if name not in INDEX_FILES)
    if others:
        raise ValueError(
            f"{path} holds an index and other files ({', '.join(others[:5])}): refusing to replace "
            "the folder and lose them; move them out or choose another output path"
        )
    if not replace:
        raise ValueError(f"{path} already holds an index; pass --replace (replace=True) to replace it")


def _write_folder(index: EmbeddingIndex, folder: Path) -> None:
    import faiss

    faiss.write_index(index.index, str(folder / "index.faiss"))
    items = {
        name: value
        for name, value in (("ids", index.items.ids), ("labels", index.items.labels), ("paths", index.items.paths))
        if value is not None
    }
    with open(folder / "items.npz", "wb") as handle:
        np.savez(handle, **items)
    if index.items.thumbnails is not None:
        np.save(folder / "thumbnails.npy", index.items.thumbnails)
    model = index.model.to_dict() if index.model is not None else None
    files = {name: file_digest(folder / name) for name in sorted(os.listdir(folder))}
    (folder / "meta.json").write_text(json.dumps({**index.meta, "format": FORMAT, "model": model, "files": files}))
    for name in os.listdir(folder):
        with open(folder / name, "rb") as handle:
            os.fsync(handle.fileno())


def save_index(index: EmbeddingIndex, path: str | Path, *, replace: bool = False) -> None:
    """Write the index folder atomically (a complete temporary folder renamed into place)."""
    path = Path(path)
    check_target(path, replace)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        _write_folder(index, tmp)
        if os.path.lexists(path):
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
            os.replace(path, old / "index")
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _read_items(path: Path) -> Items:
    with np.load(path / "items.npz", allow_pickle=False) as arrays:
        found = {name: arrays[name] for name in arrays.files}
    thumbs = path / "thumbnails.npy"
    thumbnails = np.load(thumbs, allow_pickle=False, mmap_mode="r") if thumbs.is_file() else None
    return Items(found["ids"], found.get("labels"), found.get("paths"), thumbnails)


def _check_files(path: Path, meta: dict[str, Any]) -> None:
    """Every file the index recorded is there with its SHA-256; an index from before checksums is warned about."""
    files = meta.pop("files", None)
    if files is None:
        print(
            f"ranklist: warning: the index at {path} (format {meta.get('format')}) records no checksums, so damage "
            "to its files cannot be detected; rebuild it (ranklist index) to add them",
            file=sys.stderr,
        )
        return
    for name in sorted(set(files) | {n for n in INDEX_FILES if n != "meta.json" and (path / n).exists()}):
        if name not in files or not (path / name).is_file():
            raise ValueError(f"{name} is {'not recorded in meta.json' if name not in files else 'missing'}")
        found = file_digest(path / name)
        if found != files[name]:
            raise ValueError(f"{name} has SHA-256 {found[:16]}..., meta.json records {str(files[name])[:16]}...")


def _check_counts(path: Path, index: Any, items: Items, meta: dict[str, Any]) -> None:
    counts = {"vectors": int(index.ntotal), "items": len(items), "meta.json count": meta.get("count", len(items))}
    if len(set(counts.values())) != 1 or index.d != meta.get("dim"):
        raise ValueError(
            f"corrupt index at {path}: {', '.join(f'{n} {c}' for n, c in counts.items())}; "
            f"dimension {index.d}, meta.json dim {meta.get('dim')}"
        )


def _corrupt(path: Path, error: BaseException) -> ValueError:
    return ValueError(f"corrupt index at {path}: {' '.join(str(error).split()) or type(error).__name__}")


def _read_meta(path: Path) -> dict[str, Any]:
    """meta.json, refused when it is not an index's record or is from format 1 (ids inside meta.json)."""
    try:
        meta = json.loads((path / "meta.json").read_text())
        if not isinstance(meta, dict) or "format" not in meta:
            raise ValueError("meta.json is not an index's record (no format)")
    except LOAD_ERRORS as error:
        raise _corrupt(path, error) from error
    if meta["format"] == 1:
        raise ValueError(
            f"the index at {path} is format 1, which ranklist no longer reads: rebuild it with `ranklist index`"
        )
    return meta


def load_index(path: str | Path) -> EmbeddingIndex:
    """An index folder, checked; a missing one is FileNotFoundError, a damaged one ValueError."""
    import faiss

    path = Path(path)
    if not (path / "index.faiss").is_file() or not (path / "meta.json").is_file():
        raise FileNotFoundError(f"no index at {path} (expected index.faiss and meta.json)")
    meta = _read_meta(path)
    try:
        _check_files(path, meta)
        index = faiss.read_index(str(path / "index.faiss"))
        items = _read_items(path)
        model = meta.pop("model", None)
        model = ModelFingerprint.from_dict(model) if model is not None else None
    except LOAD_ERRORS as error:
        raise _corrupt(path, error) from error
    _check_counts(path, index, items, meta)
    meta.pop("format", None)
    return EmbeddingIndex(index, items, meta, model)
