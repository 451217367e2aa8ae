"""The paper's picture: distances of positive and negative test pairs against RLL's two boundaries.

RLL pulls each positive inside alpha - m and pushes each negative beyond alpha (docs/loss.md). The
run report shows both histograms of the test embedding (one level, L2-normalised, Euclidean
distance, as the loss sees it) before training (the pretrained backbone) and after, with the share
of pairs on the wrong side of each boundary.

Large test sets have too many pairs to list (SOP: 1.8e9): at most MAX_PAIRS positive and MAX_PAIRS
negative pairs are drawn, uniformly and seeded; a split with fewer has every pair. The same pairs
are measured before and after training.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ranklist.unit_rows import unit_rows

MAX_PAIRS = 100_000  # per kind (positive, negative): the shares' standard error is below 0.2 points
_CHUNK = 8192


@dataclass(frozen=True)
class Pairs:
    """Index pairs (query row, gallery row) of one kind, and how many the split has in all."""

    queries: np.ndarray
    gallery: np.ndarray
    total: int


@dataclass(frozen=True)
class PairSample:
    """The sampled positive and negative test pairs."""

    positive: Pairs
    negative: Pairs


@dataclass(frozen=True)
class Boundaries:
    """RLL's boundaries: negatives beyond `negative` (alpha), positives within `positive` (alpha - m)."""

    negative: float
    positive: float


@dataclass(frozen=True)
class PairDistances:
    """The distances of the sampled positive and negative pairs."""

    positive: np.ndarray
    negative: np.ndarray

    def wrong_side(self, bounds: Boundaries) -> dict[str, float]:
        """Shares of positives beyond alpha - m and of negatives within alpha."""
        return {
            "positives_beyond_alpha_minus_m": float(np.mean(self.positive > bounds.positive))
            if len(self.positive)
            else float("nan"),
            "negatives_within_alpha": float(np.mean(self.negative < bounds.negative))
            if len(self.negative)
            else float("nan"),
        }


def _rll_boundaries(params: dict[str, Any]) -> Boundaries:
    from ranklist.losses.ranked_list import ranked_list_params

    p = ranked_list_params(
        params["margin"], params["alpha"], params["neg_temperature"], params["pos_temperature"], params["imbalance"]
    )
    return Boundaries(p.neg_boundary, p.pos_boundary)


# Losses with the two boundaries, by name: resolved loss parameters -> Boundaries.
BOUNDARIES: dict[str, Callable[[dict[str, Any]], Boundaries]] = {
    "rll": _rll_boundaries,
    "pml_ranked_list": lambda p: Boundaries(float(p["alpha"]), float(p["alpha"]) - float(p["margin"])),
}


def loss_boundaries(name: str, preset: str | None, params: dict[str, Any]) -> Boundaries | None:
    """The boundaries of loss `name` as configured; None for losses without them."""
    if name not in BOUNDARIES:
        return None
    from ranklist.losses import loss_params

    return BOUNDARIES[name](loss_params(name, preset, params))


def _draw(count: int, limit: int, rng: np.random.Generator) -> np.ndarray | None:
    """Indices of a seeded subsample of `count` items, or None to keep them all."""
    return None if count <= limit else np.sort(rng.choice(count, size=limit, replace=False))


def _positive_pairs(labels: np.ndarray, gallery_labels: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Every positive pair: i < j within the split, or (query, gallery item) of one class."""
    own = gallery_labels is None
    gallery_labels = labels if own else gallery_labels
    rows, cols = [], []
    for c in np.intersect1d(labels, gallery_labels):
        q, g = np.flatnonzero(labels == c), np.flatnonzero(gallery_labels == c)
        qq, gg = np.meshgrid(q, g, indexing="ij")
        keep = qq < gg if own else np.ones(qq.shape, dtype=bool)
        rows.append(qq[keep])
        cols.append(gg[keep])
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(rows).astype(np.int64), np.concatenate(cols).astype(np.int64)


def _negative_pairs(
    labels: np.ndarray, gallery_labels: np.ndarray | None, total: int, limit: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Every negative pair when there are at most `limit`, else `limit` drawn uniformly (with replacement)."""
    own = gallery_labels is None
    gallery_labels = labels if own else gallery_labels
    if total <= limit:
        q, g = (
            np.triu_indices(len(labels), k=1) if own else np.indices((len(labels), len(gallery_labels))).reshape(2, -1)
        )
        keep = labels[q] != gallery_labels[g]
        return q[keep].astype(np.int64), g[keep].astype(np.int64)
    rows, cols, found = [], [], 0
    while found < limit:
        q = rng.integers(0, len(labels), size=2 * limit)
        g = rng.integers(0, len(gallery_labels), size=2 * limit)
        keep = (labels[q] != gallery_labels[g]) & ((q != g) if own else True)
        rows.append(q[keep])
        cols.append(g[keep])
        found += int(keep.sum())
    return np.concatenate(rows)[:limit], np.concatenate(cols)[:limit]


def sample_pairs(
    labels: np.ndarray, gallery_labels: np.ndarray | None = None, *, max_pairs: int = MAX_PAIRS, seed: int = 0
) -> PairSample:
    """The test pairs measured: self-retrieval (gallery_labels None: unordered pairs within the
    split) or query x gallery; at most `max_pairs` of each kind, seeded."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    pos_q, pos_g = _positive_pairs(labels, gallery_labels)
    n_pos = len(pos_q)
    keep = _draw(n_pos, max_pairs, rng)
    if keep is not None:
        pos_q, pos_g = pos_q[keep], pos_g[keep]
    n = len(labels)
    all_pairs = n * (n - 1) // 2 if gallery_labels is None else n * len(gallery_labels)
    neg_q, neg_g = _negative_pairs(
        labels, None if gallery_labels is None else np.asarray(gallery_labels), all_pairs - n_pos, max_pairs, rng
    )
    return PairSample(Pairs(pos_q, pos_g, n_pos), Pairs(neg_q, neg_g, all_pairs - n_pos))


def _distances(queries: torch.Tensor, gallery: torch.Tensor, pairs: Pairs) -> np.ndarray:
    """||q_i - g_j|| of unit vectors, in chunks (a few MiB at a time)."""
    out = []
    for start in range(0, len(pairs.queries), _CHUNK):
        q = queries[torch.as_tensor(pairs.queries[start : start + _CHUNK])]
        g = gallery[torch.as_tensor(pairs.gallery[start : start + _CHUNK])]
        out.append((q - g).norm(dim=1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def pair_distances(embeddings: torch.Tensor, pairs: PairSample, gallery: torch.Tensor | None = None) -> PairDistances:
    """The sampled pairs' distances in `embeddings` (each row L2-normalised first, as the loss does)."""
    queries = unit_rows(embeddings.float())
    gallery = queries if gallery is None else unit_rows(gallery.float())
    return PairDistances(_distances(queries, gallery, pairs.positive), _distances(queries, gallery, pairs.negative))


def distance_summary(
    distances: dict[str, PairDistances], bounds: Boundaries | None, pairs: PairSample, level: str
) -> dict[str, Any]:
    """What summary.json keeps of the picture: pair counts, boundaries and wrong-side shares."""
    result: dict[str, Any] = {
        "level": level,
        "positive_pairs": pairs.positive.total,
        "negative_pairs": pairs.negative.total,
        "positive_pairs_measured": len(pairs.positive.queries),
        "negative_pairs_measured": len(pairs.negative.queries),
    }
    if bounds is not None:
        result["alpha"], result["alpha_minus_m"] = bounds.negative, bounds.positive
        result["wrong_side"] = {name: d.wrong_side(bounds) for name, d in distances.items()}
    result["median"] = {
        name: {
            "positive": float(np.median(d.positive)) if len(d.positive) else None,
            "negative": float(np.median(d.negative)) if len(d.negative) else None,
        }
        for name, d in distances.items()
    }
    return result
