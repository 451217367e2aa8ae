"""A retrieval index of embeddings with faiss: build, add, save, load, search.

Cosine similarity on L2-normalised embeddings (inner product). Kinds: "flat" (exact), "ivf"
(inverted lists, approximate, for millions of items), "ivfpq" (inverted lists with product-
quantised codes: a few dozen bytes per vector, for 10^8 and more).

Besides the vectors an index holds its items (id, label, image path, and a thumbnail for images
that have no file) and the fingerprint of the model that embedded them, so that a query or an
addition from another model is refused. It is saved as one folder (index.faiss, meta.json,
items.npz, thumbnails.npy) written under a temporary name and renamed, so a reader sees a whole
index or none; saving never replaces anything but an index.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ranklist.models.fingerprint import ModelFingerprint, check_same_model
from ranklist.unit_rows import unit_rows

KINDS = ("flat", "ivf", "ivfpq")
PQ_CENTROIDS = 256  # per sub-quantiser, for the 8-bit codes ivfpq uses
FORMAT = 3  # 3: meta.json records every file's SHA-256


@dataclass(frozen=True)
class Items:
    """What an index knows of each of its N items, in index order."""

    ids: np.ndarray  # [N] unique ints or strings
    labels: np.ndarray | None = None  # [N] int class of each item (a labelled split)
    paths: np.ndarray | None = None  # [N] str image file of each item
    thumbnails: np.ndarray | None = None  # [N, T, T, 3] uint8, for images held in memory

    def __post_init__(self) -> None:
        n = len(self.ids)
        for name in ("labels", "paths", "thumbnails"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise ValueError(f"items: {name} has {len(value)} entries but there are {n} ids")
        if len(np.unique(self.ids)) != n:
            raise ValueError("items: ids must be unique")
        if self.paths is not None and len(np.unique(self.paths)) != n:
            values, counts = np.unique(self.paths, return_counts=True)
            raise ValueError(
                f"items: {int((counts > 1).sum())} image paths are listed more than once "
                f"(e.g. {values[counts > 1][0]}); "
                "an image indexed twice is its own neighbour twice"
            )

    def __len__(self) -> int:
        return len(self.ids)

    def concat(self, other: Items) -> Items:
        """These items followed by `other`'s; both must carry the same kinds of information."""
        parts = {}
        for name in ("ids", "labels", "paths", "thumbnails"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if (mine is None) != (theirs is None):
                have = "has" if mine is not None else "has no"
                raise ValueError(f"the index {have} {name}: the added items must match it")
            parts[name] = None if mine is None else np.concatenate([mine, theirs])
        if np.asarray(self.ids).dtype.kind != np.asarray(other.ids).dtype.kind:
            raise ValueError(f"added ids are {other.ids.dtype} but the index's are {self.ids.dtype}")
        return Items(**parts)


@dataclass
class EmbeddingIndex:
    """A faiss index with its items, its metadata and the model whose embeddings it holds."""

    index: Any  # a faiss index
    items: Items
    meta: dict[str, Any] = field(default_factory=dict)  # kind, dim, count, class_names, source, ...
    model: ModelFingerprint | None = None  # the model whose embeddings it holds

    @property
    def ids(self) -> np.ndarray:
        return self.items.ids

    @property
    def labels(self) -> np.ndarray | None:
        return self.items.labels

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
    return unit_rows(torch.from_numpy(x)).numpy()


def _as_items(items: Items | np.ndarray | None, n: int, labels: np.ndarray | None) -> Items:
    if isinstance(items, Items):
        found = items
    else:
        found = Items(
            np.arange(n) if items is None else np.asarray(items),
            None if labels is None else np.asarray(labels, dtype=np.int64),
        )
    if len(found) != n:
        raise ValueError(f"ids has {len(found)} entries but embeddings has {n} rows")
    return found


def _faiss_index(x: np.ndarray, kind: str, nlist: int | None, m: int, nprobe: int, seed: int) -> Any:
    import faiss

    n, dim = x.shape
    if kind == "flat":
        return faiss.IndexFlatIP(dim)
    nlist = nlist or max(1, min(n // 39, int(4 * np.sqrt(n))))
    quantizer = faiss.IndexFlatIP(dim)
    if kind == "ivf":
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    else:
        if dim % m:
            raise ValueError(f"ivfpq needs the dimension {dim} to be a multiple of m={m}")
        if n < PQ_CENTROIDS:  # each sub-quantiser learns 256 centroids (8-bit codes) from the data
            raise ValueError(
                f"ivfpq needs at least {PQ_CENTROIDS} vectors to train its product quantiser, got {n}; "
                "use kind 'flat' (exact) or 'ivf' for a collection this small"
            )
        index = faiss.IndexIVFPQ(quantizer, dim, nlist, m, 8, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    index.train(x)
    index.nprobe = min(nprobe, nlist)
    return index


def build_index(
    embeddings: np.ndarray,
    ids: Items | np.ndarray | None = None,
    *,
    kind: str = "flat",
    nlist: int | None = None,
    m: int = 16,
    nprobe: int = 16,
    seed: int = 0,
    labels: np.ndarray | None = None,
    model: ModelFingerprint | None = None,
    meta: dict[str, Any] | None = None,
) -> EmbeddingIndex:
    """Index `embeddings` (normalised here). `ids` is an Items record or just the ids (default
    0..N-1, with `labels`). ivf/ivfpq train their coarse quantiser (nlist lists, default ~4 sqrt(N))
    and product quantiser (m sub-vectors of 8 bits) with faiss's k-means."""
    if kind not in KINDS:
        raise ValueError(f"unknown index kind {kind!r}; choose one of {KINDS}")
    x = _normalised(embeddings, "embeddings")
    found = _as_items(ids, len(x), labels)
    index = _faiss_index(x, kind, nlist, m, nprobe, seed)
    index.add(x)
    return EmbeddingIndex(index, found, {**(meta or {}), "kind": kind, "dim": x.shape[1], "count": len(x)}, model)


def next_ids(index: EmbeddingIndex, n: int) -> np.ndarray:
    """n fresh integer ids after the index's largest (for an index whose ids are integers)."""
    if index.ids.dtype.kind not in "iu":
        raise ValueError("this index's ids are not integers: give the added items' ids")
    start = int(index.ids.max()) + 1 if len(index.ids) else 0
    return np.arange(start, start + n)


def add_to_index(
    index: EmbeddingIndex, embeddings: np.ndarray, items: Items, model: ModelFingerprint | None = None
) -> EmbeddingIndex:
    """Append items (embedded by the index's own model) to the index, in place; returns it."""
    check_same_model(index.model, model, "the added embeddings")
    x = _normalised(embeddings, "embeddings")
    if x.shape[1] != index.dim:
        raise ValueError(f"added embeddings have dimension {x.shape[1]} but the index holds dimension {index.dim}")
    if len(items) != len(x):
        raise ValueError(f"{len(items)} added items for {len(x)} embeddings")
    clash = np.intersect1d(index.ids, items.ids)
    if len(clash):
        raise ValueError(f"added ids already in the index: {clash[:5].tolist()}")
    if index.items.paths is not None and items.paths is not None:
        again = np.intersect1d(index.items.paths, items.paths)
        if len(again):
            raise ValueError(
                f"{len(again)} of the {len(items)} added images are already in the index (e.g. {again[0]}): "
                "adding a split twice doubles every neighbour; add only new images"
            )
    merged = index.items.concat(items)
    index.index.add(x)
    index.items = merged
    index.meta["count"] = len(index)
    return index


def search(
    index: EmbeddingIndex, queries: np.ndarray, k: int = 10, model: ModelFingerprint | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(cosine similarities [Q, k], ids [Q, k]) of each query's k nearest indexed items."""
    rows_scores, rows = search_rows(index, queries, k, model)
    return rows_scores, index.ids[rows]


def search_rows(
    index: EmbeddingIndex, queries: np.ndarray, k: int = 10, model: ModelFingerprint | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Like `search`, but the neighbours as row numbers of the index (into `index.items`)."""
    check_same_model(index.model, model, "the queries")
    q = _normalised(queries, "queries")
    if q.shape[1] != index.dim:
        raise ValueError(f"queries have dimension {q.shape[1]} but the index holds dimension {index.dim}")
    if not 1 <= k <= len(index):
        raise ValueError(f"k must be between 1 and the index size {len(index)}, got {k}")
    scores, rows = index.index.search(q, k)
    if (rows < 0).any():  # an approximate index found fewer than k items for some query
        raise ValueError(f"the index returned fewer than k={k} results; raise nprobe or lower k")
    return scores, rows


def stored_vectors(index: EmbeddingIndex, rows: np.ndarray) -> np.ndarray:
    """The indexed vectors of some rows (exact for flat/ivf, the decoded codes for ivfpq)."""
    import faiss

    ivf = faiss.try_extract_index_ivf(index.index)
    if ivf is not None and not ivf.direct_map.type:
        ivf.make_direct_map()
    return np.stack([index.index.reconstruct(int(r)) for r in np.asarray(rows)])
