"""The search service behind the HTTP API: an index, the embedder of the model that built it, and
the answers (neighbours, items, thumbnails, the browse view) as plain data. No HTTP here: every
method is a blocking call the app runs off its event loop, and bad input is an InputError."""

from __future__ import annotations

import io
import os
import sys
import threading
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image

from ranklist.data.image_decoding import read_rgb, upright
from ranklist.data.thumbnails import thumbnail
from ranklist.models.fingerprint import check_same_model
from ranklist.retrieval import EmbeddingIndex, search_rows, stored_vectors
from ranklist.serving.coalescing import CoalescingEmbedder
from ranklist.serving.embedders import Embedder
from ranklist.serving.uploads import InputError, ServeLimits, Upload, decode_batch

THUMBNAIL_SIDE = 160  # served thumbnails of image files


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _common_folder(paths: np.ndarray) -> str:
    """The deepest folder holding every path ("" when they share none or are relative already)."""
    absolute = [str(p) for p in paths if os.path.isabs(str(p))]
    if not absolute or len(absolute) != len(paths):
        return ""
    common = os.path.commonpath(absolute)
    return os.path.dirname(common) if common in set(absolute) else common  # one file: its folder


class SearchService:
    """The server's work, outside HTTP: embed uploads, search the index, browse and thumbnails."""

    def __init__(
        self, index: EmbeddingIndex, embedder: Embedder, limits: ServeLimits = ServeLimits(), expose_paths: bool = False
    ) -> None:
        if index.model is None:
            print(
                "ranklist serve: warning: the index records no model; queries cannot be checked against it",
                file=sys.stderr,
            )
        check_same_model(index.model, embedder.fingerprint, "the server's embeddings")
        # concurrent requests share forwards (one leader runs the model over everything queued)
        self.index, self.embedder, self.limits = index, CoalescingEmbedder(embedder, limits.max_batch), limits
        self.rows = {str(_plain(i)): row for row, i in enumerate(index.ids)}
        self.class_names = index.meta.get("class_names") or None
        # Paths are shown relative to the items' common folder unless asked: absolute paths tell a
        # page on another origin (DNS rebinding) about the server's disk.
        self._path_base = "" if expose_paths or index.items.paths is None else _common_folder(index.items.paths)
        self._browse_lock = threading.Lock()
        self._browse: dict[int, list[dict[str, Any]]] = {}
        self.thumbnail = lru_cache(maxsize=2048)(self._thumbnail)
        stored_vectors(index, np.array([0]))  # builds an IVF index's direct map now, not racing in a worker thread

    # --- items -----------------------------------------------------------------------------------
    def row(self, item_id: str) -> int:
        if item_id not in self.rows:
            raise InputError(404, f"no item with id {item_id!r}")
        return self.rows[item_id]

    def item(self, row: int) -> dict[str, Any]:
        items = self.index.items
        record: dict[str, Any] = {"id": _plain(items.ids[row])}
        if items.labels is not None:
            label = int(items.labels[row])
            record["label"] = label
            if self.class_names and label < len(self.class_names):
                record["class_name"] = self.class_names[label]
        if items.paths is not None:
            path = str(items.paths[row])
            record["path"] = os.path.relpath(path, self._path_base) if self._path_base else path
        return record

    def page(self, offset: int, limit: int) -> list[dict[str, Any]]:
        if offset < 0 or not 1 <= limit <= 1000:
            raise InputError(422, f"need offset >= 0 and 1 <= limit <= 1000, got offset={offset}, limit={limit}")
        return [self.item(row) for row in range(offset, min(offset + limit, len(self.index)))]

    def _thumbnail(self, row: int) -> bytes:
        items = self.index.items
        if items.thumbnails is not None:
            image = Image.fromarray(np.asarray(items.thumbnails[row]))
        elif items.paths is not None:
            try:
                image = upright(read_rgb(items.paths[row]))
            except (OSError, ValueError) as error:
                raise InputError(404, f"image of item {_plain(items.ids[row])!r}: {error}") from None
            image = Image.fromarray(thumbnail(image, THUMBNAIL_SIDE))
        else:
            raise InputError(404, f"item {_plain(items.ids[row])!r} has no image in this index")
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()

    # --- search ----------------------------------------------------------------------------------
    def check_k(self, k: int, available: int | None = None) -> int:
        top = min(self.limits.max_k, len(self.index) if available is None else available)
        if not 1 <= k <= top:
            raise InputError(422, f"k must be between 1 and {top}, got {k}")
        return k

    def embed(self, uploads: Sequence[Upload]) -> np.ndarray:
        """Uploaded images' embeddings (decoded within the limits, one at a time)."""
        return self.embedder.embed(decode_batch(uploads, self.limits, self.embedder.preprocessing))

    def _hits(self, scores: np.ndarray, rows: np.ndarray, query_label: int | None = None) -> list[dict[str, Any]]:
        hits = []
        for score, row in zip(scores, rows):
            hit = {**self.item(int(row)), "score": round(float(score), 6)}
            if query_label is not None and "label" in hit:
                hit["correct"] = hit["label"] == query_label
            hits.append(hit)
        return hits

    def search_images(self, uploads: Sequence[Upload], k: int) -> list[list[dict[str, Any]]]:
        self.check_k(k)
        scores, rows = search_rows(self.index, self.embed(uploads), k)
        return [self._hits(s, r) for s, r in zip(scores, rows)]

    def neighbours(self, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Each indexed row's k nearest other rows (itself left out)."""
        scores, found = search_rows(self.index, stored_vectors(self.index, rows), k + 1)
        keep = found != np.asarray(rows)[:, None]
        keep[keep.all(axis=1), -1] = False  # itself not among the k + 1 (approximate index): drop the last
        return scores[keep].reshape(len(rows), k), found[keep].reshape(len(rows), k)

    def item_neighbours(self, row: int, k: int) -> list[dict[str, Any]]:
        self.check_k(k, len(self.index) - 1)
        scores, found = self.neighbours(np.array([row]), k)
        labels = self.index.labels
        return self._hits(scores[0], found[0], None if labels is None else int(labels[row]))

    # --- the browse view -------------------------------------------------------------------------
    def browse(self, k: int) -> list[dict[str, Any]]:
        """A sample of indexed items as queries, worst first: fewest same-class neighbours among the
        top k, then a wrong first neighbour, then the lowest score of the first correct one."""
        labels = self.index.labels
        if labels is None:
            raise InputError(409, "this index has no labels: the browse view needs an index of a labelled split")
        self.check_k(k, len(self.index) - 1)
        with self._browse_lock:
            if k not in self._browse:
                self._browse[k] = self._rank_queries(k, labels)
            return self._browse[k]

    def _rank_queries(self, k: int, labels: np.ndarray) -> list[dict[str, Any]]:
        n = len(self.index)
        rows = np.unique(np.linspace(0, n - 1, min(n, self.limits.browse_queries)).round().astype(int))
        scores, found = self.neighbours(rows, k)
        correct = labels[found] == labels[rows][:, None]
        order = sorted(range(len(rows)), key=lambda i: (correct[i].mean(), bool(correct[i, 0]), int(rows[i])))
        return [
            {
                "query": self.item(int(rows[i])),
                "precision": round(float(correct[i].mean()), 4),
                "neighbours": self._hits(scores[i], found[i], int(labels[rows[i]])),
            }
            for i in order
        ]
