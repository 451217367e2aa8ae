"""The fused Ranked List Loss kernel: closed-form gradient, block by block over the queries.

Inputs are already L2-normalised (the caller differentiates through the normalisation). For a
block of B queries against M references the kernel makes one B x M matrix product for the
distances, one element-wise pass (block_terms: mining, max-shifted softmax sums, W; three sweeps
per row that torch.compile fuses into one loop over the rows), and one B x M product for the
gradient, which it computes during the forward pass: backward only rescales saved [N, D] / [M, D]
gradients. Per-row and [N, D] work is done once per call, not per block. Peak extra memory is a
few B x M matrices, never N x M.

Notation (docs/loss.md): d_ij = ||f_i - r_j||; positive boundary pb = alpha - m, negative
boundary nb = alpha; c_ij = dL_i/dd_ij = (1 - lambda) p_ij on mined positives and -lambda q_ij on
mined negatives (p, q the normalised weights, constants). With weight_gradient the weights are
differentiated too (pytorch-metric-learning's reading): c_ij = (1 - lambda) p_ij (1 + Tp (u_ij - L_P(i)))
and -lambda q_ij (1 + Tn (v_ij - L_N(i))), u, v the violations; the rest is unchanged, element-wise.
Since dd_ij/df_i = (f_i - r_j)/d_ij,
    dL_i/df_i = f_i * sum_j W_ij - (W r)_i,          W_ij = c_ij / d_ij  (0 where d_ij = 0),
    dL_i/dr_j = r_j * W_ij - W_ij f_i                   ("full" gradient only).

Near-duplicates: sqrt(2 - 2 f.r) has an absolute error ~ eps / d (3e-4 at d ~ 0 in float32), and
the two-product gradient cancels there too. Rows holding a minable pair with d < NEAR_DISTANCE are
recomputed (eagerly; they are few) with those pairs' d and direction from the rows' difference,
taken in float64 from the raw (un-normalised) inputs when the caller passes them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch

from ranklist.compiling import maybe_compiled
from ranklist.unit_rows import unit_rows

# One B x M block holds about this many pairs (~16 MB per float32 matrix, a few of them alive)...
DEFAULT_PAIRS_PER_BLOCK = 1 << 22
# ...but at least this many rows while a block stays under MAX_PAIRS_PER_BLOCK (64 MB): at large M,
# fewer and taller blocks keep the products efficient and the multi-threaded calls few (docs/results.md,
# the loss kernel against its floor).
MIN_BLOCK_ROWS = 1024
MAX_PAIRS_PER_BLOCK = 1 << 24


def block_rows(n: int, m: int) -> int:
    """Queries per block by default."""
    rows = max(DEFAULT_PAIRS_PER_BLOCK // m, min(MIN_BLOCK_ROWS, MAX_PAIRS_PER_BLOCK // m))
    return max(1, min(n, rows))


@dataclass(frozen=True)
class RankedListParams:
    """The kernel's hyper-parameters, as boundaries, temperatures and the balance lambda."""

    pos_boundary: float  # alpha - m: positives are pulled inside it
    neg_boundary: float  # alpha: negatives are pushed beyond it
    pos_temperature: float
    neg_temperature: float
    imbalance: float  # lambda: weight of the negative part
    weight_gradient: bool = False  # differentiate through the normalised weights p, q


# Mined pairs closer than this are recomputed from the rows' difference. Beyond it the error of
# sqrt(2 - 2 cos) in float32 is below ~1e-6 of d's range, and in training such pairs are rare.
NEAR_DISTANCE = 0.25


class Extremes(NamedTuple):
    """Per row [B]: the two masked softmaxes' largest logits (their max shifts) and the distances
    of the near check."""

    neg_shift: torch.Tensor  # max over mined negatives of Tn (nb - d_ij); -inf if none
    pos_shift: torch.Tensor | None  # max over mined positives of Tp (d_ij - pb); -inf if none; None: Tp = 0
    nearest_negative: torch.Tensor  # min over other classes of d_ij (+inf if none)
    nearest_positive: torch.Tensor | None  # min over positive candidates (+inf if none); None: pb >= NEAR


class BlockTerms(NamedTuple):
    """The element-wise pass over one block of B queries: W and its row sums, and per row the raw
    sums and extremes that row_terms turns into the loss (CVPR eqs. 9, 11-13)."""

    weight: torch.Tensor  # [B, M] W_ij = c_ij / d_ij (0 where d_ij = 0)
    weight_row_sum: torch.Tensor  # [B] sum_j W_ij
    pos_sum: torch.Tensor  # [B] S+_i / exp(pos_shift_i), 0 when nothing is mined
    neg_sum: torch.Tensor  # [B] S-_i / exp(neg_shift_i)
    pos_violation: torch.Tensor  # [B] sum over mined positives of w_ij (d_ij - pb), unnormalised
    neg_violation: torch.Tensor  # [B] sum over mined negatives of w_ij (nb - d_ij), unnormalised
    extremes: Extremes


def pair_masks(
    labels: torch.Tensor, ref_labels: torch.Tensor, self_col: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(same class [B, M], positive candidate = same class and not the query itself [B, M])."""
    same = labels[:, None] == ref_labels[None, :]
    columns = torch.arange(ref_labels.shape[0], device=ref_labels.device, dtype=self_col.dtype)
    return same, same & (columns[None, :] != self_col[:, None])


def block_terms(
    sim: torch.Tensor,
    out: torch.Tensor,
    labels: torch.Tensor,
    ref_labels: torch.Tensor,
    self_col: torch.Tensor,
    pos_boundary: float,
    neg_boundary: float,
    pos_temperature: float,
    neg_temperature: float,
    imbalance: float,
    weight_gradient: bool = False,
) -> BlockTerms:
    """distance_terms of a block of inner products, d = sqrt(2 - 2 sim), with W written into `out`
    [B, M] (a buffer reused by every block: a fresh 64 MB matrix per block costs its page faults).
    The masks come from the label vectors inside, so a fused (compiled) version never stores a
    B x M mask."""
    same, positive = pair_masks(labels, ref_labels, self_col)
    dist = torch.sqrt(torch.clamp(2.0 - 2.0 * sim, min=0.0))
    terms = distance_terms(
        dist, same, positive, pos_boundary, neg_boundary, pos_temperature, neg_temperature, imbalance, weight_gradient
    )
    out.copy_(terms.weight)  # compiled, W is stored there directly
    return terms._replace(weight=out)


def distance_terms(
    dist: torch.Tensor,
    same: torch.Tensor,
    positive: torch.Tensor,
    pos_boundary: float,
    neg_boundary: float,
    pos_temperature: float,
    neg_temperature: float,
    imbalance: float,
    weight_gradient: bool = False,
) -> BlockTerms:
    """The element-wise pass from the distances, in three sweeps along each row that a compiler
    fuses into one loop over the rows (each row stays in cache): the extremes, the shifted weight
    sums, then W. Masks decide membership (strict inequalities), so a negative at d = 0 is mined.
    Only B x M results and reductions come out: per-row arithmetic after the last sweep would
    split the fused loop (row_terms does it)."""
    inf = float("inf")
    pos_excess, neg_excess = dist - pos_boundary, neg_boundary - dist
    mined_pos, mined_neg = positive & (pos_excess > 0), ~same & (neg_excess > 0)
    neg_logit = neg_temperature * neg_excess
    extremes = Extremes(
        torch.where(mined_neg, neg_logit, -inf).amax(dim=1),
        torch.where(mined_pos, pos_temperature * pos_excess, -inf).amax(dim=1) if pos_temperature > 0 else None,
        torch.where(same, inf, dist).amin(dim=1),
        torch.where(positive, dist, inf).amin(dim=1) if pos_boundary < NEAR_DISTANCE else None,
    )
    # Shifted by the rows' largest logits; a row's empty set has shift -inf, but no pair is mined there.
    pos_logit = 0.0 if extremes.pos_shift is None else pos_temperature * pos_excess - extremes.pos_shift[:, None]
    logit = torch.where(same, pos_logit, neg_logit - extremes.neg_shift[:, None])
    weight = torch.where(mined_pos | mined_neg, torch.exp(logit), 0.0)  # unnormalised, 0 if not mined
    pos_sum, neg_sum = torch.where(same, weight, 0.0).sum(dim=1), torch.where(same, 0.0, weight).sum(dim=1)
    pos_violation = torch.where(same, weight * pos_excess, 0.0).sum(dim=1)
    neg_violation = torch.where(same, 0.0, weight * neg_excess).sum(dim=1)
    w = _pair_weights(
        weight,
        dist,
        same,
        (pos_sum, neg_sum, pos_violation, neg_violation),
        pos_excess,
        neg_excess,
        pos_temperature,
        neg_temperature,
        imbalance,
        weight_gradient,
    )
    return BlockTerms(w, w.sum(dim=1), pos_sum, neg_sum, pos_violation, neg_violation, extremes)


def _pair_weights(
    weight: torch.Tensor,
    dist: torch.Tensor,
    same: torch.Tensor,
    sums: tuple[torch.Tensor, ...],
    pos_excess: torch.Tensor,
    neg_excess: torch.Tensor,
    pos_temperature: float,
    neg_temperature: float,
    imbalance: float,
    weight_gradient: bool,
) -> torch.Tensor:
    """W = c / d from the unnormalised weights and their row sums."""
    pos_sum, neg_sum, pos_violation, neg_violation = sums
    pos_inverse = torch.where(pos_sum > 0, 1.0 / pos_sum, 0.0)  # empty sets: weights 0, not 0/0
    neg_inverse = torch.where(neg_sum > 0, 1.0 / neg_sum, 0.0)
    p_or_q = weight * torch.where(same, pos_inverse[:, None], neg_inverse[:, None])  # p_ij or q_ij
    if weight_gradient:  # d/dv of sum_j softmax(T v)_j v_j is softmax(T v)_j (1 + T (v_j - the part))
        pos_part = 1.0 + pos_temperature * (pos_excess - (pos_violation * pos_inverse)[:, None])
        neg_part = 1.0 + neg_temperature * (neg_excess - (neg_violation * neg_inverse)[:, None])
        p_or_q = p_or_q * torch.where(same, pos_part, neg_part)
    coef = p_or_q * torch.where(same, 1.0 - imbalance, -imbalance)  # c_ij
    return torch.where(dist > 0, coef / dist, 0.0)


@dataclass
class RowTerms:
    """Per-query terms of one block of rows: the loss and the log of the weight sums."""

    loss: torch.Tensor  # [B] L(i) = (1 - lambda) L_P(i) + lambda L_N(i)
    log_weight_sum: torch.Tensor  # [B] log(S+_i + S-_i); -inf when nothing is mined


def row_terms(terms: BlockTerms, params: RankedListParams) -> RowTerms:
    """Per-row results from block_terms' raw sums (a few [B] operations)."""
    extremes = terms.extremes
    pos_shift = 0.0 if extremes.pos_shift is None else extremes.pos_shift
    pos_loss = terms.pos_violation / terms.pos_sum.clamp_min(torch.finfo(terms.pos_sum.dtype).tiny)
    neg_loss = terms.neg_violation / terms.neg_sum.clamp_min(torch.finfo(terms.neg_sum.dtype).tiny)
    loss = (1.0 - params.imbalance) * pos_loss + params.imbalance * neg_loss
    log_weight_sum = torch.logaddexp(
        torch.log(terms.pos_sum) + pos_shift, torch.log(terms.neg_sum) + extremes.neg_shift
    )
    return RowTerms(loss, log_weight_sum)


BlockTermsFn = Callable[..., BlockTerms]

# Below this many pairs the element-wise work is cheap next to the Python overhead, and a compile
# (seconds on first use) would not pay for itself.
AUTO_COMPILE_MIN_PAIRS = 1 << 20


def select_block_terms(compile: bool | None, device: torch.device, pairs: int) -> BlockTermsFn:
    """block_terms, eager or fused by torch.compile (compile=None: fused on large problems)."""
    return maybe_compiled(block_terms, compile=compile, device=device, size=pairs, min_size=AUTO_COMPILE_MIN_PAIRS)


@dataclass
class KernelResult:
    """The kernel's output: per-query losses and weight sums, and the gradients when asked for."""

    loss: torch.Tensor  # [N] per-query loss L(i)
    log_weight_sum: torch.Tensor  # [N] log(S+_i + S-_i); -inf when nothing is mined
    grad_query: torch.Tensor | None  # [N, D] dL_i/df_i
    grad_ref: torch.Tensor | None  # [M, D] sum_i ref_row_coef_i dL_i/dr_j


@dataclass
class NearPairs:
    """Pairs whose gradient is taken from the rows' difference instead of from W."""

    rows: torch.Tensor  # [P] query row
    cols: torch.Tensor  # [P] reference column
    weight: torch.Tensor  # [P] W_ij = c_ij / d_ij
    diff: torch.Tensor  # [P, D] f_i - r_j


def run_kernel(
    queries: torch.Tensor,
    refs: torch.Tensor,
    labels: torch.Tensor,
    ref_labels: torch.Tensor,
    self_index: torch.Tensor,
    params: RankedListParams,
    *,
    query_grad: bool,
    ref_row_coef: torch.Tensor | None,
    block_size: int | None,
    terms_fn: BlockTermsFn,
    sources: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> KernelResult:
    """Loss, log weight sums and the requested gradients of every query, block by block.

    query_grad: also compute dL_i/df_i (each query's own list; "query" and "full" both need it).
    ref_row_coef [N]: if given, also compute the reference-side gradient sum_i coef_i dL_i/dr_j
    ("full" gradient), where coef_i is what the reduction gives query i.
    sources: the raw (un-normalised) queries and references, for near-duplicates' differences.

    A block costs its two products and the fused pass; everything per row or per [N, D] is done
    once at the end (few operations: on a busy machine each multi-threaded one waits for a core).
    """
    n, dim = queries.shape
    m = refs.shape[0]
    block = block_size or block_rows(n, m)
    grad_query = queries.new_empty(n, dim) if query_grad else None  # (W r)_i until the end
    grad_ref = refs.new_zeros(m, dim) if ref_row_coef is not None else None
    column_sums = refs.new_zeros(m) if ref_row_coef is not None else None  # sum_i a_i W_ij
    sim_buffer = queries.new_empty(min(block, n), m)  # one for all blocks: no fresh pages per block
    weight_buffer = torch.empty_like(sim_buffer)
    scalars = (
        params.pos_boundary,
        params.neg_boundary,
        params.pos_temperature,
        params.neg_temperature,
        params.imbalance,
        params.weight_gradient,
    )
    labels, ref_labels, self_index = _int32_labels(labels, ref_labels, self_index)
    blocks, near_pairs = [], []
    for start in range(0, n, block):
        rows = slice(start, min(start + block, n))
        q = queries[rows]
        sim = torch.mm(q, refs.T, out=sim_buffer[: q.shape[0]])
        terms = terms_fn(sim, weight_buffer[: q.shape[0]], labels[rows], ref_labels, self_index[rows], *scalars)
        near_rows = _near_rows(terms.extremes)
        if near_rows is not None:
            block_sources = None if sources is None else (sources[0][rows], sources[1])
            near = _refine_rows(
                near_rows, q, refs, sim, (labels[rows], ref_labels, self_index[rows]), params, block_sources, terms
            )
            near_pairs.append(NearPairs(near.rows + start, near.cols, near.weight, near.diff))
        if grad_query is not None:
            torch.mm(terms.weight, refs, out=grad_query[rows])
        if grad_ref is not None and column_sums is not None and ref_row_coef is not None:
            coef = ref_row_coef[rows]
            column_sums.addmv_(terms.weight.T, coef)
            grad_ref.addmm_(terms.weight.T, q * coef[:, None], alpha=-1.0)
        blocks.append(terms._replace(weight=None))
    per_row = _concatenated(blocks)
    _finish_gradients(
        grad_query, grad_ref, queries, refs, per_row.weight_row_sum, column_sums, near_pairs, ref_row_coef
    )
    finished = row_terms(per_row, params)
    return KernelResult(finished.loss, finished.log_weight_sum, grad_query, grad_ref)


def _near_rows(extremes: Extremes) -> torch.Tensor | None:
    """Rows of a block with a pair nearer than NEAR_DISTANCE that may be mined, or None."""
    near = extremes.nearest_negative < NEAR_DISTANCE
    if extremes.nearest_positive is not None:  # given when a positive's boundary is near 0
        near = near | (extremes.nearest_positive < NEAR_DISTANCE)
    return near.nonzero()[:, 0] if bool(near.any()) else None


def _concatenated(blocks: list[BlockTerms]) -> BlockTerms:
    """The blocks' per-row results end to end (W left out)."""

    def cat(tensors: list) -> torch.Tensor | None:
        return None if tensors[0] is None else torch.cat(tensors)

    extremes = Extremes(*(cat([b.extremes[i] for b in blocks]) for i in range(len(Extremes._fields))))
    fields = [cat([b[i] for b in blocks]) for i in range(len(BlockTerms._fields) - 1)]
    return BlockTerms(*fields, extremes)  # type: ignore[arg-type]


def _finish_gradients(
    grad_query: torch.Tensor | None,
    grad_ref: torch.Tensor | None,
    queries: torch.Tensor,
    refs: torch.Tensor,
    row_sums: torch.Tensor,
    column_sums: torch.Tensor | None,
    near_pairs: list[NearPairs],
    coef: torch.Tensor | None,
) -> None:
    """dL_i/df_i = f_i sum_j W_ij - (W r)_i and grad_ref += r_j sum_i a_i W_ij, in place, plus the
    near pairs' W_ij (f_i - r_j) and -a_i W_ij (f_i - r_j)."""
    if grad_query is not None:
        grad_query.neg_().addcmul_(queries, row_sums[:, None])
    if grad_ref is not None and column_sums is not None:
        grad_ref.addcmul_(refs, column_sums[:, None])
    for near in near_pairs:
        if grad_query is not None:
            grad_query.index_add_(0, near.rows, near.weight[:, None] * near.diff)
        if grad_ref is not None and coef is not None:
            grad_ref.index_add_(0, near.cols, -(near.weight * coef[near.rows])[:, None] * near.diff)


def _int32_labels(labels: torch.Tensor, ref_labels: torch.Tensor, self_index: torch.Tensor) -> tuple:
    """Labels and self index as int32, which a fused pass compares per pair at half the cost of
    int64; labels beyond int32 are renumbered first (same classes, dense ids)."""
    both = torch.cat([labels, ref_labels])
    limits = torch.iinfo(torch.int32)
    if bool((both < limits.min).any() or (both > limits.max).any()):
        both = torch.unique(both, return_inverse=True)[1]
    both = both.to(torch.int32)
    return both[: labels.shape[0]], both[labels.shape[0] :], self_index.to(torch.int32)


def _refine_rows(
    rows: torch.Tensor,
    q: torch.Tensor,
    refs: torch.Tensor,
    sim: torch.Tensor,
    block_labels: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    params: RankedListParams,
    sources: tuple[torch.Tensor, torch.Tensor] | None,
    terms: BlockTerms,
) -> NearPairs:
    """Recompute `rows` of a block in place of `terms` with every pair nearer than NEAR_DISTANCE
    measured from its difference; W of those pairs is zeroed and returned with the differences
    (rows within the block), so the gradient takes their direction from the difference too."""
    dist = torch.sqrt(torch.clamp(2.0 - 2.0 * sim[rows], min=0.0))
    pair_rows, cols = (dist < NEAR_DISTANCE).nonzero(as_tuple=True)
    diff = _differences(q, refs, rows[pair_rows], cols, sources)
    dist[pair_rows, cols] = torch.linalg.vector_norm(diff, dim=1)
    labels, ref_labels, self_col = block_labels
    same, positive = pair_masks(labels[rows], ref_labels, self_col[rows])
    fixed = distance_terms(
        dist,
        same,
        positive,
        params.pos_boundary,
        params.neg_boundary,
        params.pos_temperature,
        params.neg_temperature,
        params.imbalance,
        params.weight_gradient,
    )
    weight = fixed.weight[pair_rows, cols]
    fixed.weight[pair_rows, cols] = 0.0
    fixed = fixed._replace(weight_row_sum=fixed.weight.sum(dim=1))
    for name in ("weight", "weight_row_sum", "pos_sum", "neg_sum", "pos_violation", "neg_violation"):
        getattr(terms, name)[rows] = getattr(fixed, name)
    for mine, theirs in zip(terms.extremes[:2], fixed.extremes[:2]):  # the shifts
        if mine is not None:
            mine[rows] = theirs
    return NearPairs(rows[pair_rows], cols, weight, diff)


def _differences(
    q: torch.Tensor,
    refs: torch.Tensor,
    rows: torch.Tensor,
    cols: torch.Tensor,
    sources: tuple[torch.Tensor, torch.Tensor] | None,
) -> torch.Tensor:
    """f_i - r_j of the given pairs [P, D]: from the raw inputs normalised in float64 when given
    (the float32 unit vectors are rounded: ~eps absolute, so ~eps / d relative in the difference)."""
    if sources is None:
        return q[rows] - refs[cols]
    unit = [unit_rows(raw.double()) for raw in (sources[0][rows], sources[1][cols])]
    return (unit[0] - unit[1]).to(q.dtype)
