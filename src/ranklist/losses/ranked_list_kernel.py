"""The fused Ranked List Loss kernel: closed-form gradient, block by block over the queries.

Inputs are already L2-normalised (the caller differentiates through the normalisation). For a
block of B queries against M references the kernel makes one B x M matrix product for the
distances, one element-wise pass (mining, max-shifted softmax weights, per-query loss; fused by
torch.compile when enabled), and one B x M product for the gradient, which it computes during the
forward pass: backward only rescales saved [N, D] / [M, D] gradients. Peak extra memory is a few
B x M matrices, never N x M.

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

import torch

from ranklist.compiling import maybe_compiled

# One B x M block holds at most this many pairs: ~16 MB per float32 matrix, a few of them alive.
DEFAULT_PAIRS_PER_BLOCK = 1 << 22


@dataclass(frozen=True)
class RankedListParams:
    pos_boundary: float  # alpha - m: positives are pulled inside it
    neg_boundary: float  # alpha: negatives are pushed beyond it
    pos_temperature: float
    neg_temperature: float
    imbalance: float  # lambda: weight of the negative part
    weight_gradient: bool = False  # differentiate through the normalised weights p, q


def _masked_softmax_stats(
    logits: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Normalised weights of a row-wise masked softmax, shifted by the row maximum (log-sum-exp).

    Returns (weights [B, M], log of the unshifted row sum [B] (-inf for empty rows), non-empty [B]).
    """
    masked = logits.masked_fill(~mask, float("-inf"))
    row_max = masked.amax(dim=1, keepdim=True)
    nonempty = torch.isfinite(row_max)
    shift = torch.where(nonempty, row_max, torch.zeros_like(row_max))
    unnormalised = torch.exp(masked - shift)  # exp(-inf) = 0 outside the mask
    row_sum = unnormalised.sum(dim=1, keepdim=True)
    weights = unnormalised / row_sum.clamp_min(torch.finfo(row_sum.dtype).tiny)
    log_sum = (torch.log(row_sum) + shift).squeeze(1)
    return weights, log_sum, nonempty.squeeze(1)


# Mined pairs closer than this are recomputed from the rows' difference. Beyond it the error of
# sqrt(2 - 2 cos) in float32 is below ~1e-6 of d's range, and in training such pairs are rare.
NEAR_DISTANCE = 0.25


def block_terms(
    sim: torch.Tensor,
    same_class: torch.Tensor,
    not_self: torch.Tensor,
    pos_boundary: float,
    neg_boundary: float,
    pos_temperature: float,
    neg_temperature: float,
    imbalance: float,
    weight_gradient: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Element-wise part of one block: (W = c / d [B, M], per-query loss [B], log S_i [B], rows
    with a pair nearer than NEAR_DISTANCE that may be mined [B] (bool)), with d = sqrt(2 - 2 sim)."""
    dist = torch.sqrt(torch.clamp(2.0 - 2.0 * sim, min=0.0))
    return distance_terms(dist, same_class, not_self, pos_boundary, neg_boundary, pos_temperature,
                          neg_temperature, imbalance, weight_gradient)


def distance_terms(
    dist: torch.Tensor,
    same_class: torch.Tensor,
    not_self: torch.Tensor,
    pos_boundary: float,
    neg_boundary: float,
    pos_temperature: float,
    neg_temperature: float,
    imbalance: float,
    weight_gradient: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """block_terms from the distances: CVPR eqs. 9, 11-13 with TPAMI's positive weighting; masks
    decide membership (strict inequalities), so a negative at d = 0 is mined."""
    pos = same_class & not_self & (dist > pos_boundary)
    neg = (~same_class) & (dist < neg_boundary)
    pos_w, pos_log_sum, _ = _masked_softmax_stats(pos_temperature * (dist - pos_boundary), pos)
    neg_w, neg_log_sum, _ = _masked_softmax_stats(neg_temperature * (neg_boundary - dist), neg)
    loss_pos = (pos_w * (dist - pos_boundary)).sum(dim=1)
    loss_neg = (neg_w * (neg_boundary - dist)).sum(dim=1)
    loss = (1.0 - imbalance) * loss_pos + imbalance * loss_neg
    if weight_gradient:  # d/dv of sum_j softmax(T v)_j v_j is softmax(T v)_j (1 + T (v_j - the part))
        pos_w = pos_w * (1.0 + pos_temperature * ((dist - pos_boundary) - loss_pos[:, None]))
        neg_w = neg_w * (1.0 + neg_temperature * ((neg_boundary - dist) - loss_neg[:, None]))
    coef = (1.0 - imbalance) * pos_w - imbalance * neg_w
    inv_dist = torch.where(dist > 0, 1.0 / dist, torch.zeros_like(dist))
    log_weight_sum = torch.logaddexp(pos_log_sum, neg_log_sum)
    # Pairs that may be mined once d is exact (a positive only when its boundary is near 0).
    candidates = same_class & not_self if pos_boundary < NEAR_DISTANCE else torch.zeros_like(same_class)
    near = ((candidates | ~same_class) & (dist < NEAR_DISTANCE)).any(dim=1)
    return coef * inv_dist, loss, log_weight_sum, near


BlockTermsFn = Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]

# Below this many pairs the element-wise work is cheap next to the Python overhead, and a compile
# (seconds on first use) would not pay for itself.
AUTO_COMPILE_MIN_PAIRS = 1 << 20


def select_block_terms(compile: bool | None, device: torch.device, pairs: int) -> BlockTermsFn:
    """block_terms, eager or fused by torch.compile (compile=None: fused on large problems)."""
    return maybe_compiled(block_terms, compile=compile, device=device, size=pairs, min_size=AUTO_COMPILE_MIN_PAIRS)


@dataclass
class KernelResult:
    loss: torch.Tensor  # [N] per-query loss L(i)
    log_weight_sum: torch.Tensor  # [N] log(S+_i + S-_i); -inf when nothing is mined
    grad_query: torch.Tensor | None  # [N, D] dL_i/df_i
    grad_ref: torch.Tensor | None  # [M, D] sum_i ref_row_coef_i dL_i/dr_j


@dataclass
class NearPairs:
    """Pairs of a block whose gradient is taken from the rows' difference instead of from W."""

    rows: torch.Tensor  # [P] row within the block
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
    """
    n, dim = queries.shape
    m = refs.shape[0]
    block = block_size or max(1, min(n, DEFAULT_PAIRS_PER_BLOCK // m))
    loss = queries.new_empty(n)
    log_weight_sum = queries.new_empty(n)
    grad_query = queries.new_empty(n, dim) if query_grad else None
    grad_ref = refs.new_zeros(m, dim) if ref_row_coef is not None else None
    ref_columns = torch.arange(m, device=refs.device)
    for start in range(0, n, block):
        stop = min(start + block, n)
        q = queries[start:stop]
        sim = q @ refs.T
        same_class = labels[start:stop, None] == ref_labels[None, :]
        not_self = self_index[start:stop, None] != ref_columns[None, :]
        terms = (params.pos_boundary, params.neg_boundary, params.pos_temperature,
                 params.neg_temperature, params.imbalance, params.weight_gradient)
        w, block_loss, block_log_sum, near_rows = terms_fn(sim, same_class, not_self, *terms)
        near = None
        if bool(near_rows.any()):
            rows = near_rows.nonzero()[:, 0]
            block_sources = None if sources is None else (sources[0][start:stop], sources[1])
            near = _refine_rows(rows, q, refs, sim, same_class, not_self, terms, block_sources,
                                (w, block_loss, block_log_sum))
        loss[start:stop] = block_loss
        log_weight_sum[start:stop] = block_log_sum
        if grad_query is not None:
            grad_query[start:stop] = q * w.sum(dim=1, keepdim=True) - w @ refs
            if near is not None:
                grad_query[start:stop].index_add_(0, near.rows, near.weight[:, None] * near.diff)
        if grad_ref is not None:
            assert ref_row_coef is not None
            coef = ref_row_coef[start:stop]
            w = w * coef[:, None]
            grad_ref += refs * w.sum(dim=0)[:, None] - w.T @ q
            if near is not None:
                grad_ref.index_add_(0, near.cols, -(near.weight * coef[near.rows])[:, None] * near.diff)
    return KernelResult(loss, log_weight_sum, grad_query, grad_ref)


def _refine_rows(
    rows: torch.Tensor, q: torch.Tensor, refs: torch.Tensor, sim: torch.Tensor,
    same_class: torch.Tensor, not_self: torch.Tensor, terms: tuple,
    sources: tuple[torch.Tensor, torch.Tensor] | None,
    out: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
) -> NearPairs:
    """Recompute `rows` of a block in place of `out` (W, loss, log S) with every pair nearer than
    NEAR_DISTANCE measured from its difference; W of those pairs is zeroed in `out` and returned
    with the differences, so the gradient takes their direction from the difference too."""
    dist = torch.sqrt(torch.clamp(2.0 - 2.0 * sim[rows], min=0.0))
    pair_rows, cols = (dist < NEAR_DISTANCE).nonzero(as_tuple=True)
    diff = _differences(q, refs, rows[pair_rows], cols, sources)
    dist[pair_rows, cols] = torch.linalg.vector_norm(diff, dim=1)
    w_rows, loss_rows, log_rows, _ = distance_terms(dist, same_class[rows], not_self[rows], *terms)
    weight = w_rows[pair_rows, cols]
    w_rows[pair_rows, cols] = 0.0
    w, loss, log_sum = out
    w[rows], loss[rows], log_sum[rows] = w_rows.to(w.dtype), loss_rows.to(loss.dtype), log_rows.to(log_sum.dtype)
    return NearPairs(rows[pair_rows], cols, weight, diff)


def _differences(q: torch.Tensor, refs: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
                 sources: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
    """f_i - r_j of the given pairs [P, D]: from the raw inputs normalised in float64 when given
    (the float32 unit vectors are rounded: ~eps absolute, so ~eps / d relative in the difference)."""
    if sources is None:
        return q[rows] - refs[cols]
    unit = [_unit_float64(raw) for raw in (sources[0][rows], sources[1][cols])]
    return (unit[0] - unit[1]).to(q.dtype)


def _unit_float64(raw: torch.Tensor) -> torch.Tensor:
    """Rows normalised in float64, scaled by their largest entry first (no under/overflow)."""
    x = raw.double()
    return torch.nn.functional.normalize(x / x.abs().amax(dim=1, keepdim=True).clamp_min(1e-300), dim=1)
