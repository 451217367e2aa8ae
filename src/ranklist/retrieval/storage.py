"""An index on disk: one folder written whole under a temporary name, then renamed into place.

    PATH/index.faiss     the faiss index
    PATH/meta.json       {"format": 2, "kind", "dim", "count", "model", "class_names", "source", ...}
    PATH/items.npz       ids, labels, paths (those the index has)
    PATH/thumbnails.npy  uint8 [N, T, T, 3], for images without a file (optional)

Saving refuses to replace anything that is not an index (a user's folder, a run folder, a file),
and replaces an index only when told to.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ranklist.retrieval.fingerprint import ModelFingerprint
from ranklist.retrieval.index import FORMAT, EmbeddingIndex, Items


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
    if not is_index(path) or path.is_symlink():
        raise ValueError(f"{path} exists and is not an index (a file or a folder of other things): "
                         "refusing to replace it; choose another output path")
    if not replace:
        raise ValueError(f"{path} already holds an index; pass --replace (replace=True) to replace it")


def _write_folder(index: EmbeddingIndex, folder: Path) -> None:
    import faiss

    faiss.write_index(index.index, str(folder / "index.faiss"))
    items = {name: value for name, value in (("ids", index.items.ids), ("labels", index.items.labels),
                                             ("paths", index.items.paths)) if value is not None}
    with open(folder / "items.npz", "wb") as handle:
        np.savez(handle, **items)
    if index.items.thumbnails is not None:
        np.save(folder / "thumbnails.npy", index.items.thumbnails)
    model = index.model.to_dict() if index.model is not None else None
    (folder / "meta.json").write_text(json.dumps({**index.meta, "format": FORMAT, "model": model}))
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


def _read_items(path: Path, meta: dict[str, Any]) -> Items:
    if meta["format"] == 1:  # ids (and labels) inside meta.json
        labels = meta.pop("labels", None)
        return Items(np.asarray(meta.pop("ids")), None if labels is None else np.asarray(labels, dtype=np.int64))
    with np.load(path / "items.npz", allow_pickle=False) as arrays:
        found = {name: arrays[name] for name in arrays.files}
    thumbs = path / "thumbnails.npy"
    thumbnails = np.load(thumbs, allow_pickle=False, mmap_mode="r") if thumbs.is_file() else None
    return Items(found["ids"], found.get("labels"), found.get("paths"), thumbnails)


def load_index(path: str | Path) -> EmbeddingIndex:
    """An index folder, checked; a missing one is FileNotFoundError, a damaged one ValueError."""
    import faiss

    path = Path(path)
    if not (path / "index.faiss").is_file() or not (path / "meta.json").is_file():
        raise FileNotFoundError(f"no index at {path} (expected index.faiss and meta.json)")
    try:
        meta = json.loads((path / "meta.json").read_text())
        index = faiss.read_index(str(path / "index.faiss"))
        items = _read_items(path, meta)
        model = meta.pop("model", None)
        model = ModelFingerprint.from_dict(model) if model is not None else None
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, zipfile.BadZipFile) as error:
        raise ValueError(f"corrupt index at {path}: {' '.join(str(error).split()) or type(error).__name__}") from error
    if index.ntotal != len(items) or index.d != meta.get("dim"):
        raise ValueError(f"corrupt index at {path}: {index.ntotal} vectors of dimension {index.d}, "
                         f"meta says {len(items)} of {meta.get('dim')}")
    meta.pop("format", None)
    return EmbeddingIndex(index, items, meta, model)
