"""Hostile inputs to the Ranked List Loss: each gives one clear ValueError naming the bad value, or
a correct result (checked against the float64 reference or an invariance)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ranklist import RankedListLoss, ranked_list_loss
from tests.losses.reference_rll import reference_ranked_list_loss


def _batch(n=12, d=8, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.arange(n) % classes


X, Y = _batch()
NAN = X.clone()
NAN[3, 2] = float("nan")
INF = X.clone()
INF[5, 0] = float("-inf")
ZERO_ROW = X.clone()
ZERO_ROW[7] = 0.0

# (case id, call, message the ValueError must match)
ERRORS = [
    ("nan_embeddings", lambda: ranked_list_loss(NAN, Y), r"embeddings has non-finite values \(rows \[3\]"),
    ("inf_embeddings", lambda: ranked_list_loss(INF, Y), r"embeddings has non-finite values \(rows \[5\]"),
    (
        "1d_embeddings",
        lambda: ranked_list_loss(X[:, 0], Y),
        r"embeddings must be a 2-D float tensor \[N, D\], got \(12,\)",
    ),
    ("3d_embeddings", lambda: ranked_list_loss(X[None], Y), r"got \(1, 12, 8\)"),
    ("int_embeddings", lambda: ranked_list_loss(X.long(), Y), r"embeddings must be a 2-D float tensor"),
    (
        "numpy_embeddings",
        lambda: ranked_list_loss(X.numpy(), Y),
        r"embeddings must be a 2-D float tensor \[N, D\], got ndarray",
    ),
    ("no_rows", lambda: ranked_list_loss(X[:0], Y[:0]), r"embeddings must be non-empty, got shape \(0, 8\)"),
    ("no_columns", lambda: ranked_list_loss(X[:, :0], Y), r"embeddings must be non-empty, got shape \(12, 0\)"),
    ("labels_short", lambda: ranked_list_loss(X, Y[:5]), r"labels has 5 entries but embeddings has 12 rows"),
    ("labels_float", lambda: ranked_list_loss(X, Y.float()), r"labels must hold integers, got dtype torch.float32"),
    ("labels_bool", lambda: ranked_list_loss(X, Y > 0), r"labels must hold integers, got dtype torch.bool"),
    ("labels_2d", lambda: ranked_list_loss(X, Y[:, None]), r"labels must be a 1-D integer tensor, got \(12, 1\)"),
    ("labels_list", lambda: ranked_list_loss(X, Y.tolist()), r"labels must be a 1-D integer tensor, got list"),
    ("ref_emb_without_labels", lambda: ranked_list_loss(X, Y, ref_emb=X), r"ref_emb needs ref_labels"),
    ("ref_labels_without_emb", lambda: ranked_list_loss(X, Y, ref_labels=Y), r"ref_labels and self_index need ref_emb"),
    (
        "ref_dim_mismatch",
        lambda: ranked_list_loss(X, Y, ref_emb=X[:, :4], ref_labels=Y),
        r"ref_emb has dimension 4 but embeddings has 8",
    ),
    (
        "ref_nan",
        lambda: ranked_list_loss(X, Y, ref_emb=NAN, ref_labels=Y),
        r"ref_emb has non-finite values \(rows \[3\]",
    ),
    (
        "ref_labels_short",
        lambda: ranked_list_loss(X, Y, ref_emb=X, ref_labels=Y[:3]),
        r"ref_labels has 3 entries but ref_emb has 12 rows",
    ),
    (
        "self_index_short",
        lambda: ranked_list_loss(X, Y, ref_emb=X, ref_labels=Y, self_index=torch.arange(4)),
        r"self_index has 4 entries but embeddings has 12 rows",
    ),
    (
        "self_index_float",
        lambda: ranked_list_loss(X, Y, ref_emb=X, ref_labels=Y, self_index=torch.arange(12.0)),
        r"self_index must hold integers, got dtype torch.float32",
    ),
    (
        "self_index_too_big",
        lambda: ranked_list_loss(X, Y, ref_emb=X, ref_labels=Y, self_index=torch.arange(12) + 1),
        r"self_index\[11\] = 12 is neither -1 nor a row of ref_emb in \[0, 12\)",
    ),
    (
        "self_index_other_class",
        lambda: ranked_list_loss(X, Y, ref_emb=X, ref_labels=Y, self_index=torch.arange(12).roll(1)),
        r"self_index\[0\] = 11 points at a row of class 2, but query 0 has class 0",
    ),
    (
        "negative_margin",
        lambda: ranked_list_loss(X, Y, margin=-0.1),
        r"margin must be a finite number >= 0.0, got -0.1",
    ),
    ("nan_alpha", lambda: ranked_list_loss(X, Y, alpha=float("nan")), r"alpha must be a finite number >= 0.0, got nan"),
    (
        "inf_temperature",
        lambda: ranked_list_loss(X, Y, neg_temperature=float("inf")),
        r"neg_temperature must be a finite number >= 0.0, got inf",
    ),
    (
        "imbalance_above_1",
        lambda: ranked_list_loss(X, Y, imbalance=1.5),
        r"imbalance must be a finite number in \[0.0, 1.0\], got 1.5",
    ),
    (
        "margin_above_alpha",
        lambda: ranked_list_loss(X, Y, alpha=0.3, margin=0.4),
        r"alpha - margin must be >= 0 .*alpha=0.3, margin=0.4",
    ),
    (
        "string_margin",
        lambda: ranked_list_loss(X, Y, margin="big"),
        r"margin must be a finite number >= 0.0, got 'big'",
    ),
    ("unknown_reduction", lambda: ranked_list_loss(X, Y, reduction="avg"), r"reduction must be one of .* got 'avg'"),
    ("unknown_gradient", lambda: ranked_list_loss(X, Y, gradient="both"), r"gradient must be one of .* got 'both'"),
    (
        "zero_block_size",
        lambda: ranked_list_loss(X, Y, block_size=0),
        r"block_size must be a positive integer or None, got 0",
    ),
    ("unknown_preset", lambda: RankedListLoss.from_preset("paper"), r"unknown preset 'paper'"),
    (
        "module_bad_param",
        lambda: RankedListLoss(imbalance=-1),
        r"imbalance must be a finite number in \[0.0, 1.0\], got -1",
    ),
]


@pytest.mark.parametrize("call,message", [c[1:] for c in ERRORS], ids=[c[0] for c in ERRORS])
def test_bad_input_is_one_clear_error(call, message):
    with pytest.raises(ValueError, match=message) as caught:
        call()
    assert "\n" not in str(caught.value)


def _value_and_grad(fn, emb):
    emb = emb.detach().clone().requires_grad_(True)
    out = fn(emb)
    out.sum().backward()
    return out.detach().double(), emb.grad.double()


def _assert_matches_reference(emb, labels, rtol=1e-5, **kwargs):
    got, got_grad = _value_and_grad(lambda e: ranked_list_loss(e, labels, **kwargs), emb)
    want, want_grad = _value_and_grad(lambda e: reference_ranked_list_loss(e, labels, **kwargs), emb.double())
    torch.testing.assert_close(got, want, rtol=rtol, atol=1e-6)
    torch.testing.assert_close(got_grad, want_grad, rtol=rtol, atol=1e-6)


CORRECT = {
    "single_row": lambda: _assert_matches_reference(X[:1], Y[:1]),
    "one_class": lambda: _assert_matches_reference(X, torch.zeros(12, dtype=torch.long)),
    "all_classes_distinct": lambda: _assert_matches_reference(X, torch.arange(12)),
    "singleton_classes_mixed": lambda: _assert_matches_reference(X, torch.tensor([0, 0, 1, 2, 3, 3, 3, 4, 5, 6, 6, 7])),
    "negative_and_huge_labels": lambda: _assert_matches_reference(X, (Y - 5) * 10**12),
    "int8_labels": lambda: _assert_matches_reference(X, Y.to(torch.int8)),
    "duplicate_rows": lambda: _assert_matches_reference(torch.cat([X[:6], X[:6]]), Y),
    "one_dimension": lambda: _assert_matches_reference(X[:, :1], Y),
    "constant_columns": lambda: _assert_matches_reference(X + 1e3, Y, rtol=1e-3),
    "official_reduction_nothing_mined": lambda: _assert_matches_reference(
        X[:2], torch.tensor([0, 0]), reduction="official"
    ),
    "zero_temperatures": lambda: _assert_matches_reference(X, Y, neg_temperature=0.0, pos_temperature=0.0),
    "huge_temperature": lambda: _assert_finite_and_close(
        ranked_list_loss(X, Y, neg_temperature=1e6, reduction="official")
    ),
    "float16_inputs": lambda: _assert_close_to_float32(X.half()),
    "bfloat16_inputs": lambda: _assert_close_to_float32(X.bfloat16()),
    "float64_inputs": lambda: _assert_matches_reference(X.double(), Y, rtol=1e-9),
    "rows_scaled_1e30": lambda: _assert_scale_invariant(1e30),
    "rows_scaled_1e-30": lambda: _assert_scale_invariant(1e-30),
    "non_contiguous_embeddings": lambda: _assert_matches_reference(torch.randn(8, 12).T, Y),
    "empty_reference_set_rows": lambda: _assert_matches_reference(X[:4], Y[:4], ref_emb=X[4:], ref_labels=Y[4:] + 100),
    "needs_grad_false": lambda: _assert_finite_and_close(ranked_list_loss(X, Y)),
    "block_size_1": lambda: _assert_blocks(),
}


def _assert_finite_and_close(value):
    assert torch.isfinite(value).all()


def _assert_close_to_float32(half):
    got = ranked_list_loss(half, Y)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, ranked_list_loss(half.float(), Y))


def _assert_scale_invariant(scale):
    want, want_grad = _value_and_grad(lambda e: ranked_list_loss(e, Y), X)
    got, got_grad = _value_and_grad(lambda e: ranked_list_loss(e, Y), X * scale)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=0)
    torch.testing.assert_close(got_grad * scale, want_grad, rtol=1e-4, atol=1e-6)


def _assert_blocks():
    torch.testing.assert_close(ranked_list_loss(X, Y, block_size=1), ranked_list_loss(X, Y))


@pytest.mark.parametrize("check", list(CORRECT.values()), ids=list(CORRECT))
def test_odd_but_valid_input_gives_the_correct_result(check):
    check()


def test_numpy_labels_are_refused_not_misread():
    with pytest.raises(ValueError, match="labels must be a 1-D integer tensor, got ndarray"):
        ranked_list_loss(X, np.arange(12) % 3)


def test_an_all_zero_row_is_a_finite_loss_with_no_gradient_for_it():
    x = ZERO_ROW.clone().requires_grad_(True)
    loss = ranked_list_loss(x, Y)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all() and not x.grad[7].any()
