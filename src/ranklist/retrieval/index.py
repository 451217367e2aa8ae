"""A retrieval index of embeddings with faiss: build, save, load, search.

Cosine similarity on L2-normalised embeddings (inner product). Kinds: "flat" (exact), "ivf"
(inverted lists, approximate, for millions of items), "ivfpq" (inverted lists with product-
quantised codes: a few dozen bytes per vector, for 10^8 and more). An index is saved as one folder
(index.faiss + meta.json with the ids/labels/dimension) written under a temporary name and renamed,
so a reader sees a whole index or none.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

KINDS = ("flat", "ivf", "ivfpq")


@dataclass
class EmbeddingIndex:
    index: Any  # a faiss index
    ids: np.ndarray  # [N] item ids (strings or ints) in index order
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.index.d)

    def __len__(self) -> int:
        return int(self.index.ntotal)


def _normalised(embeddings: np.ndarray, name: str) -> np.ndarray:
    x = np.ascontiguousarray(np.asarray(embeddings, dtype=np.float32))
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array [N, D], got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} has non-finite values")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def build_index(embeddings: np.ndarray, ids: np.ndarray | None = None, *, kind: str = "flat", nlist: int | None = None,
                m: int = 16, nprobe: int = 16, seed: int = 0, labels: np.ndarray | None = None) -> EmbeddingIndex:
    """Index `embeddings` (normalised here). ivf/ivfpq train their coarse quantiser (nlist lists,
    default ~4 sqrt(N)) and product quantiser (m sub-vectors of 8 bits) with faiss's k-means."""
    import faiss

    if kind not in KINDS:
        raise ValueError(f"unknown index kind {kind!r}; choose one of {KINDS}")
    x = _normalised(embeddings, "embeddings")
    n, dim = x.shape
    ids = np.arange(n) if ids is None else np.asarray(ids)
    if len(ids) != n:
        raise ValueError(f"ids has {len(ids)} entries but embeddings has {n} rows")
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    else:
        nlist = nlist or max(1, min(n // 39, int(4 * np.sqrt(n))))
        quantizer = faiss.IndexFlatIP(dim)
        if kind == "ivf":
            index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        else:
            if dim % m:
                raise ValueError(f"ivfpq needs the dimension {dim} to be a multiple of m={m}")
            index = faiss.IndexIVFPQ(quantizer, dim, nlist, m, 8, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        index.train(x)
        index.nprobe = min(nprobe, nlist)
    index.add(x)
    meta = {"kind": kind, "dim": dim, "count": n}
    if labels is not None:
        meta["labels"] = np.asarray(labels).tolist()
    return EmbeddingIndex(index, ids, meta)


def search(index: EmbeddingIndex, queries: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """(cosine similarities [Q, k], ids [Q, k]) of each query's k nearest indexed items."""
    q = _normalised(queries, "queries")
    if q.shape[1] != index.dim:
        raise ValueError(f"queries have dimension {q.shape[1]} but the index holds dimension {index.dim}")
    if not 1 <= k <= len(index):
        raise ValueError(f"k must be between 1 and the index size {len(index)}, got {k}")
    scores, rows = index.index.search(q, k)
    if (rows < 0).any():  # an approximate index found fewer than k items for some query
        raise ValueError(f"the index returned fewer than k={k} results; raise nprobe or lower k")
    return scores, index.ids[rows]


def save_index(index: EmbeddingIndex, path: str | Path) -> None:
    """Write the index folder atomically (a complete temporary folder renamed into place)."""
    import faiss

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        faiss.write_index(index.index, str(tmp / "index.faiss"))
        ids = index.ids.tolist()
        (tmp / "meta.json").write_text(json.dumps({**index.meta, "ids": ids, "format": 1}))
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load_index(path: str | Path) -> EmbeddingIndex:
    import faiss

    path = Path(path)
    if not (path / "index.faiss").is_file() or not (path / "meta.json").is_file():
        raise FileNotFoundError(f"no index at {path} (expected index.faiss and meta.json)")
    try:
        meta = json.loads((path / "meta.json").read_text())
        index = faiss.read_index(str(path / "index.faiss"))
    except Exception as error:
        raise ValueError(f"corrupt index at {path}: {error}") from error
    ids = np.asarray(meta.pop("ids"))
    if index.ntotal != len(ids) or index.d != meta.get("dim"):
        raise ValueError(f"corrupt index at {path}: {index.ntotal} vectors of dimension {index.d}, meta says {len(ids)} of {meta.get('dim')}")
    return EmbeddingIndex(index, ids, meta)
