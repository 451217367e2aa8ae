"""The Ranked List Loss (Wang et al., CVPR 2019; TPAMI 2021), exactly as docs/loss.md specifies.

    loss = ranked_list_loss(embeddings, labels)                      # CVPR eq. 14, "query" gradient
    loss = RankedListLoss.from_preset("tpami2021_code")(embeddings, labels)

Embeddings come in raw and are L2-normalised here (the gradient flows through the normalisation).
Half-precision inputs are computed in float32 and the loss is returned in float32; float64 stays
float64. The heavy lifting is ranked_list_kernel.run_kernel (blocked, closed-form gradient).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch

from ranklist.losses.full_precision import autocast_off, outside_autocast
from ranklist.losses.ranked_list_kernel import (
    BlockTermsFn,
    RankedListParams,
    run_kernel,
    select_block_terms,
)

REDUCTIONS = ("mean", "official", "sum", "none")
GRADIENTS = ("query", "full")

# Named settings, each with its source.
PRESETS: dict[str, dict[str, Any]] = {
    # CVPR 2019 paper text: section 4.1 "m = 0.4, T = 10, alpha = 1.2"; eq. 13 weights both parts
    # equally; eq. 14 averages over the queries; plain mean over positives (no positive weighting).
    # The paper's eq. 14 read literally (constant weights) differentiates both ends of every pair.
    "cvpr2019": dict(
        margin=0.4,
        alpha=1.2,
        neg_temperature=10.0,
        pos_temperature=0.0,
        imbalance=0.5,
        reduction="mean",
        gradient="full",
        weight_gradient=False,
    ),
    # The authors' released TPAMI-era Caffe code (RLL-Simpler, "*_Simp_*" folders, e.g.
    # InshopClothes_Simp_21042020/60_T10_pn04_v63 and CUB ..._tp0_tn10): boundaries 1 -/+ m/2 with
    # m = 0.4, Tn = 10, Tp = 0, 0.5/0.5 parts, queries weighted by their weight sums ("official"),
    # gradient w.r.t. the query only (docs/loss.md#the-two-gradient-readings).
    "tpami2021_code": dict(
        margin=0.4,
        alpha=None,
        neg_temperature=10.0,
        pos_temperature=0.0,
        imbalance=0.5,
        reduction="official",
        gradient="query",
        weight_gradient=False,
    ),
}
# This library's default: the paper's hyper-parameters with the authors' "query" gradient. The
# signatures of ranked_list_loss and RankedListLoss read their defaults from here.
DEFAULTS: dict[str, Any] = {**PRESETS["cvpr2019"], "gradient": "query"}
PRESETS["default"] = DEFAULTS
# The demo's (emoji, EfficientNet-Lite0, 380 iterations): the default with m and Tn chosen by
# `ranklist tune` on validation folds of the training classes (docs/results.md, issue 23 part 4).
PRESETS["demo"] = {**DEFAULTS, "margin": 0.3982008926023245, "neg_temperature": 5.683675412681165}


def _check_number(name: str, value: float, low: float, high: float = math.inf) -> float:
    bounds = f"in [{low}, {high}]" if math.isfinite(high) else f">= {low}"
    if not isinstance(value, numbers.Real) or isinstance(value, bool):  # "abc", None, True
        raise ValueError(f"{name} must be a finite number {bounds}, got {value!r}")
    value = float(value)
    if not (math.isfinite(value) and low <= value <= high):
        raise ValueError(f"{name} must be a finite number {bounds}, got {value}")
    return value


def _check_execution(block_size: int | None, compile: bool | None) -> None:
    valid = isinstance(block_size, numbers.Integral) and not isinstance(block_size, bool) and block_size >= 1
    if block_size is not None and not valid:
        raise ValueError(f"block_size must be a positive integer or None, got {block_size!r}")
    if compile is not None and not isinstance(compile, bool):
        raise ValueError(f"compile must be true, false or None, got {compile!r}")


def ranked_list_params(
    margin: float,
    alpha: float | None,
    neg_temperature: float,
    pos_temperature: float,
    imbalance: float,
    weight_gradient: bool = False,
) -> RankedListParams:
    """Validate the hyper-parameters and turn them into the two boundaries (docs/loss.md)."""
    margin = _check_number("margin", margin, 0.0)
    if alpha is None:  # RLL-Simpler: boundaries 1 + m/2 (negatives) and 1 - m/2 (positives)
        neg_boundary, pos_boundary = 1.0 + margin / 2, 1.0 - margin / 2
    else:
        neg_boundary = _check_number("alpha", alpha, 0.0)
        pos_boundary = neg_boundary - margin
    if pos_boundary < 0:
        raise ValueError(f"alpha - margin must be >= 0 (the positive boundary), got alpha={alpha}, margin={margin}")
    return RankedListParams(
        pos_boundary=pos_boundary,
        neg_boundary=neg_boundary,
        pos_temperature=_check_number("pos_temperature", pos_temperature, 0.0),
        neg_temperature=_check_number("neg_temperature", neg_temperature, 0.0),
        imbalance=_check_number("imbalance", imbalance, 0.0, 1.0),
        weight_gradient=_check_flag("weight_gradient", weight_gradient),
    )


def _check_flag(name: str, value: bool) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


def _check_modes(reduction: str, gradient: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if gradient not in GRADIENTS:
        raise ValueError(f"gradient must be one of {GRADIENTS}, got {gradient!r}")


def _check_embeddings(name: str, emb: torch.Tensor) -> None:
    if not isinstance(emb, torch.Tensor) or emb.dim() != 2 or not emb.is_floating_point():
        shape = tuple(emb.shape) if isinstance(emb, torch.Tensor) else type(emb).__name__
        raise ValueError(f"{name} must be a 2-D float tensor [N, D], got {shape}")
    if emb.shape[0] == 0 or emb.shape[1] == 0:
        raise ValueError(f"{name} must be non-empty, got shape {tuple(emb.shape)}")
    low, high = torch.aminmax(emb.detach())  # one read of the rows: NaN and +-inf show in the extremes
    if not bool(torch.isfinite(low) & torch.isfinite(high)):
        bad = (~torch.isfinite(emb)).any(dim=1).nonzero().flatten()[:5].tolist()
        raise ValueError(f"{name} has non-finite values (rows {bad}...)")


def _unit_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(L2-normalised rows u = x / ||x||, 1 / ||x|| [N]) of float32 or float64 rows, with no
    autograd: _RankedListFunction differentiates through the normalisation in closed form. Norms
    neither overflow (entries ~1e20 in float32) nor underflow (~1e-20): float32 rows are summed in
    float64, float64 rows are scaled by their largest entry first.

    An all-zero row (a network can output one: ReLU features all off) has no direction: it stays
    the zero vector, as F.normalize leaves it, and receives no gradient (F.normalize would give it
    a 1/eps = 1e12 one). Training goes on; the row simply teaches nothing this step.
    """
    x = x.detach()
    if x.dtype == torch.float64:
        largest = x.abs().amax(dim=1)
        norms = torch.linalg.vector_norm(x / torch.where(largest > 0, largest, 1.0)[:, None], dim=1) * largest
    else:
        norms = torch.linalg.vector_norm(x, dim=1, dtype=torch.float64)
    inverse = torch.where(norms > 0, 1.0 / norms, 0.0).to(x.dtype)
    return x * inverse[:, None], inverse


def _through_normalisation(grad_unit: torch.Tensor, unit: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
    """The gradient w.r.t. raw rows x from the one w.r.t. u = x / ||x||: (g - u (u . g)) / ||x||
    (`inverse` may carry a per-row upstream factor too). Zero rows (inverse 0) get zero."""
    along = (unit * grad_unit).sum(dim=1, keepdim=True)
    return torch.addcmul(grad_unit, unit, along, value=-1.0).mul_(inverse[:, None])


def _check_labels(name: str, labels: torch.Tensor, rows: int, emb_name: str) -> None:
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1:
        shape = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(f"{name} must be a 1-D integer tensor, got {shape}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"{name} must hold integers, got dtype {labels.dtype}")
    if labels.shape[0] != rows:
        raise ValueError(f"{name} has {labels.shape[0]} entries but {emb_name} has {rows} rows")


def _compute_dtype(emb: torch.Tensor) -> torch.dtype:
    return torch.float64 if emb.dtype == torch.float64 else torch.float32


class _RankedListFunction(torch.autograd.Function):
    """Per-query losses L(i) [N] of raw (un-normalised) rows, with the closed-form gradient (see
    ranked_list_kernel) taken through the normalisation in closed form too.

    Outputs (loss [N], log weight sums [N], non-differentiable). The query-side gradient is computed
    in the forward pass and rescaled per row in backward. With "full" gradients the reference side
    is precomputed for a uniform upstream gradient (reductions "mean"/"sum"); any other upstream
    gradient ("official", "none") recomputes it in backward with the upstream coefficients.
    refs_are_queries: the reference rows are the query rows (no ref_emb): normalised once, and the
    two sides' gradients go back through one normalisation.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        embeddings: torch.Tensor,
        ref_embeddings: torch.Tensor,
        labels: torch.Tensor,
        ref_labels: torch.Tensor,
        self_index: torch.Tensor,
        params: RankedListParams,
        full_gradient: bool,
        expect_uniform: bool,
        block_size: int | None,
        terms_fn: BlockTermsFn,
        refs_are_queries: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        queries, query_inverse = _unit_rows(embeddings)
        refs, ref_inverse = (queries, query_inverse) if refs_are_queries else _unit_rows(ref_embeddings)
        sources = (embeddings.detach(), ref_embeddings.detach())
        query_grad = ctx.needs_input_grad[0]
        ref_grad = full_gradient and ctx.needs_input_grad[1]
        uniform = queries.new_ones(queries.shape[0]) if ref_grad and expect_uniform else None
        result = run_kernel(
            queries,
            refs,
            labels,
            ref_labels,
            self_index,
            params,
            query_grad=query_grad,
            ref_row_coef=uniform,
            block_size=block_size,
            terms_fn=terms_fn,
            sources=sources,
        )
        ctx.mark_non_differentiable(result.log_weight_sum)
        ctx.query_grad = result.grad_query
        ctx.ref_grad_uniform = result.grad_ref
        ctx.ref_grad = ref_grad
        ctx.refs_are_queries = refs_are_queries
        ctx.kernel_args = (params, block_size, terms_fn, sources)
        ctx.save_for_backward(queries, refs, labels, ref_labels, self_index, query_inverse, ref_inverse)
        return result.loss, result.log_weight_sum

    @staticmethod
    def backward(ctx: Any, grad_loss: torch.Tensor, _grad_log_sum: torch.Tensor) -> tuple:
        queries, refs, labels, ref_labels, self_index, query_inverse, ref_inverse = ctx.saved_tensors
        grad_unit_refs = _unit_ref_gradient(ctx, grad_loss) if ctx.ref_grad else None
        grad_queries = grad_refs = None
        if ctx.query_grad is not None:
            if ctx.refs_are_queries and grad_unit_refs is not None:  # one normalisation, both sides
                both = torch.addcmul(grad_unit_refs, ctx.query_grad, grad_loss[:, None])
                return (_through_normalisation(both, queries, query_inverse),) + (None,) * 10
            grad_queries = _through_normalisation(ctx.query_grad, queries, query_inverse * grad_loss)
        if grad_unit_refs is not None:
            grad_refs = _through_normalisation(grad_unit_refs, refs, ref_inverse)
        return grad_queries, grad_refs, None, None, None, None, None, None, None, None, None


def _unit_ref_gradient(ctx: Any, grad_loss: torch.Tensor) -> torch.Tensor:
    """sum_i a_i dL_i/dr_j w.r.t. the unit reference rows, a = grad_loss: the forward pass's for a
    uniform a, else one more kernel pass with these coefficients."""
    if ctx.ref_grad_uniform is not None and bool((grad_loss == grad_loss[0]).all()):
        return ctx.ref_grad_uniform * grad_loss[0]
    queries, refs, labels, ref_labels, self_index, _, _ = ctx.saved_tensors
    params, block_size, terms_fn, sources = ctx.kernel_args
    with autocast_off(queries.device):  # backward may run inside the caller's autocast
        return run_kernel(
            queries,
            refs,
            labels,
            ref_labels,
            self_index,
            params,
            query_grad=False,
            ref_row_coef=grad_loss.to(queries.dtype),
            block_size=block_size,
            terms_fn=terms_fn,
            sources=sources,
        ).grad_ref


@outside_autocast  # float32 whatever autocast the caller has on (docs/loss.md#precision)
def ranked_list_loss(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    *,
    margin: float = DEFAULTS["margin"],
    alpha: float | None = DEFAULTS["alpha"],
    neg_temperature: float = DEFAULTS["neg_temperature"],
    pos_temperature: float = DEFAULTS["pos_temperature"],
    imbalance: float = DEFAULTS["imbalance"],
    reduction: str = DEFAULTS["reduction"],
    gradient: str = DEFAULTS["gradient"],
    weight_gradient: bool = DEFAULTS["weight_gradient"],
    ref_emb: torch.Tensor | None = None,
    ref_labels: torch.Tensor | None = None,
    self_index: torch.Tensor | None = None,
    return_weight_sums: bool = False,
    block_size: int | None = None,
    compile: bool | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Ranked List Loss of every embedding's ranked list (CVPR eqs. 9-14; docs/loss.md).

    Args:
        embeddings: [N, D] raw query embeddings (L2-normalised here), any float dtype and device.
        labels: [N] integer class labels.
        margin, alpha: boundaries alpha (negatives) and alpha - margin (positives); alpha=None is
            RLL-Simpler (1 + margin/2 and 1 - margin/2).
        neg_temperature, pos_temperature: Tn and Tp of the weights exp(Tn (alpha - d)) and
            exp(Tp (d - (alpha - m))); 0 gives plain means.
        imbalance: lambda in L(i) = (1 - lambda) L_P(i) + lambda L_N(i).
        reduction: "mean" (CVPR eq. 14), "official" (queries weighted by S+_i + S-_i, the authors'
            code), "sum", or "none" (the [N] per-query losses).
        gradient: "query" (only each list's query receives gradient; the authors' code) or "full"
            (both ends of every pair).
        weight_gradient: False (the paper and the authors' code): the normalised pair weights are
            constants. True: they are differentiated too, as pytorch-metric-learning does
            (docs/loss.md#differentiating-through-the-weights). The "official" query weights stay
            constants either way.
        ref_emb, ref_labels: rank the queries against this reference set instead of the batch.
        self_index: [N] with the row of ref_emb that is query i itself, or -1 (only with ref_emb;
            without ref_emb the batch is the reference and each query excludes itself).
        return_weight_sums: also return S_i = S+_i + S-_i [N] (float64, constants; for a global
            "official" normaliser across processes).
        block_size: queries per block (default: about 4M pairs per block).
        compile: fuse the element-wise work with torch.compile (same numbers up to float rounding;
            the first call compiles). None: automatically, when a compiler is present and the
            problem has at least 2**20 pairs.
    """
    _check_modes(reduction, gradient)
    _check_execution(block_size, compile)
    params = ranked_list_params(margin, alpha, neg_temperature, pos_temperature, imbalance, weight_gradient)
    _check_embeddings("embeddings", embeddings)
    _check_labels("labels", labels, embeddings.shape[0], "embeddings")
    device = embeddings.device
    n = embeddings.shape[0]
    compute = _compute_dtype(embeddings)
    raw = embeddings.to(compute)  # half rows are computed in float32; the gradient comes back in their dtype
    labels = labels.to(device=device, dtype=torch.long)

    raw_refs, ref_labels_long, self_rows = _references(raw, labels, ref_emb, ref_labels, self_index)
    if gradient == "query":
        # The gallery side of every pair is a constant (docs/loss.md#the-two-gradient-readings).
        raw_refs = raw_refs.detach()

    terms_fn = select_block_terms(compile, device, n * raw_refs.shape[0])
    per_query, log_weight_sum = _RankedListFunction.apply(
        raw,
        raw_refs,
        labels,
        ref_labels_long,
        self_rows,
        params,
        gradient == "full",
        reduction in ("mean", "sum"),
        block_size,
        terms_fn,
        ref_emb is None,
    )
    loss = _reduce(per_query, log_weight_sum, reduction)
    if return_weight_sums:
        return loss, torch.exp(log_weight_sum.double())
    return loss


def _references(
    raw: torch.Tensor,
    labels: torch.Tensor,
    ref_emb: torch.Tensor | None,
    ref_labels: torch.Tensor | None,
    self_index: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What each query is ranked against (rows in raw's dtype and device), their labels, and the
    row that is the query itself (-1: none): the batch itself unless ref_emb is given."""
    if ref_emb is None:
        if ref_labels is not None or self_index is not None:
            raise ValueError("ref_labels and self_index need ref_emb")
        return raw, labels, torch.arange(raw.shape[0], device=raw.device)
    _check_embeddings("ref_emb", ref_emb)
    if ref_labels is None:
        raise ValueError("ref_emb needs ref_labels")
    _check_labels("ref_labels", ref_labels, ref_emb.shape[0], "ref_emb")
    if ref_emb.shape[1] != raw.shape[1]:
        raise ValueError(f"ref_emb has dimension {ref_emb.shape[1]} but embeddings has {raw.shape[1]}")
    ref_labels_long = ref_labels.to(device=raw.device, dtype=torch.long)
    self_rows = _check_self_index(self_index, labels, ref_labels_long)
    return ref_emb.to(device=raw.device, dtype=raw.dtype), ref_labels_long, self_rows


def _reduce(per_query: torch.Tensor, log_weight_sum: torch.Tensor, reduction: str) -> torch.Tensor:
    """The per-query losses reduced: mean (eq. 14), sum, official (weighted by S_i) or none."""
    if reduction == "mean":
        return per_query.mean()
    if reduction == "sum":
        return per_query.sum()
    if reduction == "official":
        # pi_i = S_i / sum_k S_k as a softmax of log S (finite at any temperature); queries with
        # nothing mined have S_i = 0. If no query mined anything, the loss is 0.
        if bool(torch.isfinite(log_weight_sum).any()):
            return (torch.softmax(log_weight_sum, dim=0) * per_query).sum()
        return per_query.sum() * 0.0
    return per_query


def _check_self_index(self_index: torch.Tensor | None, labels: torch.Tensor, ref_labels: torch.Tensor) -> torch.Tensor:
    """self_index as long on the labels' device; each entry -1 or a row of ref_emb of the query's class."""
    n, m, device = labels.shape[0], ref_labels.shape[0], labels.device
    if self_index is None:
        return torch.full((n,), -1, dtype=torch.long, device=device)
    if not isinstance(self_index, torch.Tensor) or self_index.dim() != 1:
        raise ValueError(f"self_index must be a 1-D integer tensor of length {n}")
    if self_index.is_floating_point() or self_index.dtype == torch.bool:
        raise ValueError(f"self_index must hold integers, got dtype {self_index.dtype}")
    if self_index.shape[0] != n:
        raise ValueError(f"self_index has {self_index.shape[0]} entries but embeddings has {n} rows")
    index = self_index.to(device=device, dtype=torch.long)
    outside = ((index < -1) | (index >= m)).nonzero()
    if len(outside):
        i = int(outside[0])
        raise ValueError(
            f"self_index[{i}] = {int(index[i])} is neither -1 nor a row of ref_emb in [0, {m})"
            f" ({len(outside)} such entries)"
        )
    other_class = ((index >= 0) & (ref_labels[index.clamp_min(0)] != labels)).nonzero()
    if len(other_class):
        i = int(other_class[0])
        raise ValueError(
            f"self_index[{i}] = {int(index[i])} points at a row of class {int(ref_labels[index[i]])}, "
            f"but query {i} has class {int(labels[i])} ({len(other_class)} such entries)"
        )
    return index


class RankedListLoss(torch.nn.Module):
    """Module form of ranked_list_loss: holds the configuration, computes nothing itself."""

    def __init__(
        self,
        margin: float = DEFAULTS["margin"],
        alpha: float | None = DEFAULTS["alpha"],
        neg_temperature: float = DEFAULTS["neg_temperature"],
        pos_temperature: float = DEFAULTS["pos_temperature"],
        imbalance: float = DEFAULTS["imbalance"],
        reduction: str = DEFAULTS["reduction"],
        gradient: str = DEFAULTS["gradient"],
        weight_gradient: bool = DEFAULTS["weight_gradient"],
        block_size: int | None = None,
        compile: bool | None = None,
    ) -> None:
        super().__init__()
        ranked_list_params(margin, alpha, neg_temperature, pos_temperature, imbalance, weight_gradient)
        _check_modes(reduction, gradient)
        _check_execution(block_size, compile)
        self.options: dict[str, Any] = dict(
            margin=margin,
            alpha=alpha,
            neg_temperature=neg_temperature,
            pos_temperature=pos_temperature,
            imbalance=imbalance,
            reduction=reduction,
            gradient=gradient,
            weight_gradient=weight_gradient,
            block_size=block_size,
            compile=compile,
        )

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> RankedListLoss:
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; presets: {sorted(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    def forward(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        ref_emb: torch.Tensor | None = None,
        ref_labels: torch.Tensor | None = None,
        self_index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return ranked_list_loss(  # type: ignore[return-value]
            embeddings,
            labels,
            ref_emb=ref_emb,
            ref_labels=ref_labels,
            self_index=self_index,
            **self.options,
        )

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.options.items())
