"""Recall@K, MAP@R and R-Precision (SPEC section 6), exact, blocked, with a fixed tie rule.

Similarity is the cosine of L2-normalised embeddings (the same order as Euclidean distance).
Tie rule: items with equal computed similarity are ranked by ascending gallery index. Self-retrieval
excludes the query by index, not by distance: an exact duplicate of the query is another item.
Queries with no same-class item in the gallery have no relevant item to find: they are excluded
from every metric and counted in "num_excluded_queries".
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

# Similarity block: at most this many entries (64 MB of float32) alive at once.
PAIRS_PER_BLOCK = 1 << 24


def _as_embeddings(name: str, emb: torch.Tensor) -> torch.Tensor:
    emb = torch.as_tensor(emb)
    if emb.dim() != 2 or not emb.is_floating_point() or emb.shape[0] == 0 or emb.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D float array [N, D], got shape {tuple(emb.shape)}")
    if not torch.isfinite(emb).all():
        raise ValueError(f"{name} has non-finite values")
    return F.normalize(emb.to(torch.float64 if emb.dtype == torch.float64 else torch.float32), dim=1)


def _as_labels(name: str, labels: torch.Tensor, rows: int, emb_name: str, device: torch.device) -> torch.Tensor:
    labels = torch.as_tensor(labels)
    if labels.dim() != 1 or labels.is_floating_point() or labels.dtype == torch.bool:
        raise ValueError(f"{name} must be a 1-D integer array, got shape {tuple(labels.shape)} of {labels.dtype}")
    if labels.shape[0] != rows:
        raise ValueError(f"{name} has {labels.shape[0]} entries but {emb_name} has {rows} rows")
    return labels.to(device=device, dtype=torch.long)


def _top_k_block(sim: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k most similar columns per row, ordered by (-similarity, column index)."""
    values, index = sim.topk(k, dim=1)
    boundary = values[:, -1:]
    # topk picks arbitrarily among items tied at the k-th value; rows where the tie straddles the
    # cut are settled exactly: every item above the boundary, then the lowest-index tied items.
    straddles = ((sim >= boundary).sum(dim=1) > k).nonzero().flatten()
    for row in straddles.tolist():
        above = (sim[row] > boundary[row]).nonzero().flatten()
        tied = (sim[row] == boundary[row]).nonzero().flatten()[: k - above.numel()]
        index[row] = torch.cat([above, tied])
    # Order the selection: by index first, then a stable sort by descending similarity.
    index = index.sort(dim=1).values
    order = torch.sort(sim.gather(1, index), dim=1, descending=True, stable=True).indices
    return index.gather(1, order)


def nearest_neighbours(
    queries: torch.Tensor, gallery: torch.Tensor, k: int, *, exclude_self: bool
) -> torch.Tensor:
    """[Q, k] gallery indices of each query's k nearest neighbours (cosine), under the tie rule.

    exclude_self: queries and gallery are the same set and query i must not retrieve item i.
    Inputs are L2-normalised; the work is blocked so no Q x M matrix is ever held.
    """
    q, m = queries.shape[0], gallery.shape[0]
    block = max(1, min(q, PAIRS_PER_BLOCK // m))
    out = torch.empty(q, k, dtype=torch.long, device=queries.device)
    for start in range(0, q, block):
        stop = min(start + block, q)
        sim = queries[start:stop] @ gallery.T
        if exclude_self:
            rows = torch.arange(stop - start, device=sim.device)
            sim[rows, rows + start] = float("-inf")
        out[start:stop] = _top_k_block(sim, k)
    return out


def retrieval_metrics(
    emb: torch.Tensor,
    labels: torch.Tensor,
    ks: Sequence[int] = (1, 2, 4, 8),
    gallery: torch.Tensor | None = None,
    gallery_labels: torch.Tensor | None = None,
) -> dict[str, float]:
    """Recall@K (DML meaning), MAP@R and R-Precision of each query's ranking of the gallery.

    Without `gallery` the embeddings retrieve among themselves, the query excluded (CUB, CARS,
    SOP); with it, the queries search the gallery and nothing is excluded (In-shop).
    Returns {"recall@K": ..., "map@r": ..., "r_precision": ..., "num_queries": ...,
    "num_excluded_queries": ...}; the metrics are fractions in [0, 1].
    """
    queries = _as_embeddings("emb", emb)
    query_labels = _as_labels("labels", labels, queries.shape[0], "emb", queries.device)
    self_retrieval = gallery is None
    if self_retrieval:
        if gallery_labels is not None:
            raise ValueError("gallery_labels given without gallery")
        gal, gal_labels = queries, query_labels
    else:
        if gallery_labels is None:
            raise ValueError("gallery given without gallery_labels")
        gal = _as_embeddings("gallery", gallery).to(device=queries.device, dtype=queries.dtype)
        gal_labels = _as_labels("gallery_labels", gallery_labels, gal.shape[0], "gallery", queries.device)
        if gal.shape[1] != queries.shape[1]:
            raise ValueError(f"gallery has dimension {gal.shape[1]} but emb has {queries.shape[1]}")
    ks = sorted({int(k) for k in ks})
    available = gal.shape[0] - (1 if self_retrieval else 0)
    if not ks or ks[0] < 1 or ks[-1] > available:
        raise ValueError(f"ks must be between 1 and the gallery size {available} (query excluded), got {ks}")

    # R: the other same-class items of each query in the gallery.
    classes, gal_counts = torch.unique(gal_labels, return_counts=True)
    position = torch.searchsorted(classes, query_labels).clamp_max(len(classes) - 1)
    r = torch.where(classes[position] == query_labels, gal_counts[position], 0)
    if self_retrieval:
        r = r - 1
    valid = r > 0
    num_valid = int(valid.sum())
    result: dict[str, float] = {"num_queries": num_valid, "num_excluded_queries": int((~valid).sum())}
    if num_valid == 0:
        raise ValueError("no query has a same-class item in the gallery: every metric is undefined")

    k_max = min(max(ks[-1], int(r.max())), available)
    neighbours = nearest_neighbours(queries, gal, k_max, exclude_self=self_retrieval)
    relevant = (gal_labels[neighbours] == query_labels[:, None])[valid]  # [Q', k_max]
    r = r[valid]
    for k in ks:
        result[f"recall@{k}"] = float(relevant[:, :k].any(dim=1).double().mean())
    rank = torch.arange(1, k_max + 1, device=relevant.device)
    within_r = rank[None, :] <= r[:, None]
    hits = relevant & within_r
    precision_at_i = hits.cumsum(dim=1).double() / rank
    result["map@r"] = float(((precision_at_i * hits).sum(dim=1) / r).mean())
    result["r_precision"] = float((hits.sum(dim=1).double() / r).mean())
    return result
