"""Recall@K, MAP@R and R-Precision (docs/evaluation.md), exact, blocked, with a fixed tie rule.

Similarity is the cosine of L2-normalised embeddings (the same order as Euclidean distance).
Tie rule: items with equal computed similarity are ranked by ascending gallery index. Self-retrieval
excludes the query by index, not by distance: an exact duplicate of the query is another item.
Queries with no same-class item in the gallery have no relevant item to find: they are excluded
from every metric and counted in "num_excluded_queries".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ranklist.evaluation.metric_names import DEFAULT_KS, EXCLUDED, MAP_AT_R, NUM_QUERIES, R_PRECISION, recall_key
from ranklist.unit_rows import unit_rows

# Similarity block: at most this many entries (64 MB of float32) alive at once.
PAIRS_PER_BLOCK = 1 << 24


def _as_embeddings(name: str, emb: torch.Tensor) -> torch.Tensor:
    emb = torch.as_tensor(emb)
    if emb.dim() != 2 or not emb.is_floating_point() or emb.shape[0] == 0 or emb.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D float array [N, D], got shape {tuple(emb.shape)}")
    if not torch.isfinite(emb).all():
        raise ValueError(f"{name} has non-finite values")
    return unit_rows(emb.to(torch.float64 if emb.dtype == torch.float64 else torch.float32))


def _check_ks(ks: object) -> list[int]:
    """ks as a sorted list of distinct integers (their range is checked against the gallery);
    anything that is not a sequence of integers names ks."""
    if isinstance(ks, (str, bytes)) or not hasattr(ks, "__iter__"):
        raise ValueError(f"ks must be a sequence of positive integers, got {ks!r}")
    ks = list(ks)
    if any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) for k in ks):
        raise ValueError(f"ks must be a sequence of positive integers, got {ks!r}")
    return sorted({int(k) for k in ks})


def _as_labels(name: str, labels: torch.Tensor, rows: int, emb_name: str, device: torch.device) -> torch.Tensor:
    labels = torch.as_tensor(labels)
    if labels.dim() != 1 or labels.is_floating_point() or labels.dtype == torch.bool:
        raise ValueError(f"{name} must be a 1-D integer array, got shape {tuple(labels.shape)} of {labels.dtype}")
    if labels.shape[0] != rows:
        raise ValueError(f"{name} has {labels.shape[0]} entries but {emb_name} has {rows} rows")
    return labels.to(device=device, dtype=torch.long)


def _top_k_block(sim: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k most similar columns per row, ordered by (-similarity, column index)."""
    extra = 1 if k < sim.shape[1] else 0
    values, index = sim.topk(k + extra, dim=1)
    index = index[:, :k]
    # topk picks arbitrarily among items tied at the k-th value; rows where the tie straddles the
    # cut (the (k+1)-th value equals the k-th) are settled exactly: every item above the boundary,
    # then the lowest-index tied items.
    boundary = values[:, k - 1 : k]
    straddles = (values[:, k - 1] == values[:, k]).nonzero().flatten() if extra else values.new_empty(0).long()
    for row in straddles.tolist():
        above = (sim[row] > boundary[row]).nonzero().flatten()
        tied = (sim[row] == boundary[row]).nonzero().flatten()[: k - above.numel()]
        index[row] = torch.cat([above, tied])
    # Order the selection: by index first, then a stable sort by descending similarity.
    index = index.sort(dim=1).values
    order = torch.sort(sim.gather(1, index), dim=1, descending=True, stable=True).indices
    return index.gather(1, order)


def _class_members(query_labels: torch.Tensor, gallery_labels: torch.Tensor, exclude_self: bool) -> torch.Tensor:
    """[Q, Rmax] gallery indices of each query's same-class items (-1 padding; self left out)."""
    order = torch.sort(gallery_labels, stable=True).indices
    sorted_labels = gallery_labels[order]
    starts = torch.searchsorted(sorted_labels, query_labels)
    ends = torch.searchsorted(sorted_labels, query_labels, right=True)
    width = int((ends - starts).max()) if len(starts) else 0
    slots = starts[:, None] + torch.arange(max(width, 1), device=order.device)[None, :]
    inside = slots < ends[:, None]
    members = torch.where(inside, order[slots.clamp_max(len(order) - 1)], -1)
    if exclude_self:
        members = torch.where(members == torch.arange(len(query_labels), device=members.device)[:, None], -1, members)
    return members


def _count_vs(sim: torch.Tensor, rows: torch.Tensor, best: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each of `rows`: how many of its entries are greater than, and equal to, its `best`.

    Copying rows out costs about as much as comparing them, so when most rows are wanted every row
    is compared in place (the others against +inf) and the wanted counts are kept. int32 sums of a
    boolean run several times faster than the default int64 ones.
    """
    if 2 * len(rows) <= len(sim):
        picked = sim[rows]
        return (picked > best).sum(dim=1, dtype=torch.int32), (picked == best).sum(dim=1, dtype=torch.int32)
    bound = sim.new_full((len(sim), 1), float("inf"))
    bound[rows] = best
    return (sim > bound).sum(dim=1, dtype=torch.int32)[rows], (sim == bound).sum(dim=1, dtype=torch.int32)[rows]


def _counted_rank(sim: torch.Tensor, members: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """1-based rank of the first relevant column of each of `rows` (members: theirs), counted over the row.

    The first relevant item is the most similar member, lowest index among equals; its rank counts
    the columns strictly more similar, plus the equally similar ones with a lower index.
    """
    member_sim = torch.where(members >= 0, sim[rows[:, None], members.clamp_min(0)], float("-inf"))
    best = member_sim.amax(dim=1, keepdim=True)
    first = torch.where((member_sim == best) & (members >= 0), members, sim.shape[1]).amin(dim=1, keepdim=True)
    ahead, equal = _count_vs(sim, rows, best)
    rank = ahead.long() + 1
    tied = (equal > 1).nonzero().flatten()  # rare: settle the tie order exactly
    for i in tied.tolist():
        rank[i] += int(((sim[rows[i]] == best[i]) & (torch.arange(sim.shape[1], device=sim.device) < first[i])).sum())
    return rank


def _first_relevant_rank(sim: torch.Tensor, members: torch.Tensor, top_relevant: torch.Tensor) -> torch.Tensor:
    """1-based rank of each row's first relevant column (gallery size + 1 where it has none).

    top_relevant [B, k]: whether each of the row's top k (in tie-rule order) is relevant; where one
    is, the rank is read off, and only the other rows are counted over the whole gallery.
    """
    found = top_relevant.any(dim=1)
    rank = torch.where(found, top_relevant.int().argmax(dim=1) + 1, sim.shape[1] + 1).long()
    rest = (~found & (members >= 0).any(dim=1)).nonzero().flatten()
    if len(rest):
        rank[rest] = _counted_rank(sim, members[rest], rest)
    return rank


def similarity_blocks(queries: torch.Tensor, gallery: torch.Tensor):
    """(start, stop, queries[start:stop] @ gallery.T) for consecutive blocks of query rows, at most
    PAIRS_PER_BLOCK entries each, every block written into one buffer (valid until the next block).

    A fresh 64 MB product per block costs the allocator new pages (page faults) and doubled the
    product's time on CPU (docs/results.md, Throughput: Evaluation).
    """
    q, m = queries.shape[0], gallery.shape[0]
    block = max(1, min(q, PAIRS_PER_BLOCK // m))
    buffer = queries.new_empty(block, m)
    for start in range(0, q, block):
        stop = min(start + block, q)
        yield start, stop, torch.mm(queries[start:stop], gallery.T, out=buffer[: stop - start])


def scan_gallery(
    queries: torch.Tensor,
    gallery: torch.Tensor,
    query_labels: torch.Tensor,
    gallery_labels: torch.Tensor,
    k: int,
    *,
    exclude_self: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per query: its k nearest gallery indices (tie rule) and the rank of its first relevant item.

    exclude_self: queries and gallery are the same set and query i must not retrieve item i.
    Inputs are L2-normalised; the work is blocked so no Q x M matrix is ever held.
    """
    q = queries.shape[0]
    members = _class_members(query_labels, gallery_labels, exclude_self)
    top = torch.empty(q, k, dtype=torch.long, device=queries.device)
    first_rank = torch.empty(q, dtype=torch.long, device=queries.device)
    for start, stop, sim in similarity_blocks(queries, gallery):
        if exclude_self:
            rows = torch.arange(stop - start, device=sim.device)
            sim[rows, rows + start] = float("-inf")
        top[start:stop] = _top_k_block(sim, k)
        top_relevant = gallery_labels[top[start:stop]] == query_labels[start:stop, None]
        first_rank[start:stop] = _first_relevant_rank(sim, members[start:stop], top_relevant)
    return top, first_rank


def retrieval_metrics(
    emb: torch.Tensor,
    labels: torch.Tensor,
    ks: Sequence[int] = DEFAULT_KS,
    gallery: torch.Tensor | None = None,
    gallery_labels: torch.Tensor | None = None,
) -> dict[str, float]:
    """Recall@K (DML meaning), MAP@R and R-Precision of each query's ranking of the gallery.

    Without `gallery` the embeddings retrieve among themselves, the query excluded (CUB, CARS,
    SOP); with it, the queries search the gallery and nothing is excluded (In-shop).
    Returns {"recall@K": ..., "map@r": ..., "r_precision": ..., "num_queries": ...,
    "num_excluded_queries": ...}; the metrics are fractions in [0, 1], the means of
    per_query_metrics over the queries that have a same-class item.
    """
    per_query, excluded = per_query_metrics(emb, labels, ks, gallery, gallery_labels)
    result: dict[str, float] = {NUM_QUERIES: len(per_query[MAP_AT_R]), EXCLUDED: excluded}
    result.update({key: float(values.mean()) for key, values in per_query.items()})
    return result


def per_query_metrics(
    emb: torch.Tensor,
    labels: torch.Tensor,
    ks: Sequence[int] = DEFAULT_KS,
    gallery: torch.Tensor | None = None,
    gallery_labels: torch.Tensor | None = None,
) -> tuple[dict[str, torch.Tensor], int]:
    """Each query's Recall@K hit (0/1), AP@R and R-Precision (float64, one value per query that has a
    same-class item, in query order), and how many queries have none (left out). A paired bootstrap
    over test queries resamples these; retrieval_metrics averages them."""
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
    # R: the other same-class items of each query in the gallery.
    classes, gal_counts = torch.unique(gal_labels, return_counts=True)
    position = torch.searchsorted(classes, query_labels).clamp_max(len(classes) - 1)
    r = torch.where(classes[position] == query_labels, gal_counts[position], 0)
    if self_retrieval:
        r = r - 1
    valid = r > 0
    if int(valid.sum()) == 0:
        cause = (
            f"each of its {len(classes)} classes has a single item"
            if self_retrieval
            else "the queries' classes and the gallery's share none"
        )
        raise ValueError(f"no query has a same-class item to find ({cause}): every metric is undefined")
    ks = _check_ks(ks)
    available = gal.shape[0] - (1 if self_retrieval else 0)
    if not ks or ks[0] < 1 or ks[-1] > available:
        raise ValueError(f"ks must be between 1 and the gallery size {available} (query excluded), got {ks}")

    # Recall@K needs only the rank of the first relevant item; MAP@R and R-Precision the top R.
    k_max = int(r.max())
    neighbours, first_rank = scan_gallery(queries, gal, query_labels, gal_labels, k_max, exclude_self=self_retrieval)
    relevant = (gal_labels[neighbours] == query_labels[:, None])[valid]  # [Q', k_max]
    first_rank, r = first_rank[valid], r[valid]
    result = {recall_key(k): (first_rank <= k).double() for k in ks}
    rank = torch.arange(1, k_max + 1, device=relevant.device)
    within_r = rank[None, :] <= r[:, None]
    hits = relevant & within_r
    precision_at_i = hits.cumsum(dim=1).double() / rank
    result[MAP_AT_R] = (precision_at_i * hits).sum(dim=1) / r
    result[R_PRECISION] = hits.sum(dim=1).double() / r
    return result, int((~valid).sum())
