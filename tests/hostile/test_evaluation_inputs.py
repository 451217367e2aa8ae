"""Hostile inputs to the metric APIs (retrieval_metrics, nmi): one clear ValueError naming the bad
value, or a correct result."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ranklist.evaluation import nmi, retrieval_metrics

G = torch.Generator().manual_seed(0)
X = torch.randn(12, 8, generator=G)
Y = torch.arange(12) % 3
ZERO_ROW = torch.cat([X[:11], torch.zeros(1, 8)])

ERRORS = [
    (
        "rm_k_too_large",
        lambda: retrieval_metrics(X, Y, ks=(1, 12)),
        r"ks must be between 1 and the gallery size 11 \(query excluded\), got \[1, 12\]",
    ),
    ("rm_k_zero", lambda: retrieval_metrics(X, Y, ks=(0,)), r"ks must be between 1 .* got \[0\]"),
    ("rm_k_negative", lambda: retrieval_metrics(X, Y, ks=(-1,)), r"got \[-1\]"),
    ("rm_ks_empty", lambda: retrieval_metrics(X, Y, ks=()), r"got \[\]"),
    ("rm_nan", lambda: retrieval_metrics(X * float("nan"), Y), r"emb has non-finite values"),
    (
        "rm_gallery_inf",
        lambda: retrieval_metrics(X, Y, gallery=X / 0, gallery_labels=Y),
        r"gallery has non-finite values",
    ),
    (
        "rm_int_emb",
        lambda: retrieval_metrics(X.long(), Y),
        r"emb must be a non-empty 2-D float array \[N, D\], got shape \(12, 8\)",
    ),
    ("rm_1d_emb", lambda: retrieval_metrics(X[:, 0], Y), r"got shape \(12,\)"),
    ("rm_empty", lambda: retrieval_metrics(X[:0], Y[:0]), r"got shape \(0, 8\)"),
    (
        "rm_labels_float",
        lambda: retrieval_metrics(X, Y.float()),
        r"labels must be a 1-D integer array, got shape \(12,\) of torch.float32",
    ),
    ("rm_labels_short", lambda: retrieval_metrics(X, Y[:4]), r"labels has 4 entries but emb has 12 rows"),
    (
        "rm_single_item",
        lambda: retrieval_metrics(X[:1], Y[:1], ks=(1,)),
        r"no query has a same-class item to find \(each of its 1 classes",
    ),
    (
        "rm_all_singletons",
        lambda: retrieval_metrics(X, torch.arange(12), ks=(1,)),
        r"no query has a same-class item to find \(each of its 12 classes has a single item\)",
    ),
    (
        "rm_gallery_shares_no_class",
        lambda: retrieval_metrics(X, Y, ks=(1,), gallery=X, gallery_labels=Y + 10),
        r"no query has a same-class item to find \(the queries' classes and the gallery's share none\)",
    ),
    (
        "rm_gallery_dim",
        lambda: retrieval_metrics(X, Y, ks=(1,), gallery=X[:, :3], gallery_labels=Y),
        r"gallery has dimension 3 but emb has 8",
    ),
    ("rm_gallery_without_labels", lambda: retrieval_metrics(X, Y, gallery=X), r"gallery given without gallery_labels"),
    (
        "rm_labels_without_gallery",
        lambda: retrieval_metrics(X, Y, gallery_labels=Y),
        r"gallery_labels given without gallery",
    ),
    ("nmi_nan", lambda: nmi(X * float("nan"), Y), r"emb has non-finite values"),
    ("nmi_1d", lambda: nmi(X[:, 0], Y), r"emb must be a non-empty 2-D real array \[N, D\], got shape \(12,\)"),
    ("nmi_empty", lambda: nmi(X[:0], Y[:0]), r"got shape \(0, 8\)"),
    ("nmi_no_columns", lambda: nmi(X[:, :0], Y), r"got shape \(12, 0\)"),  # faiss died of SIGFPE before
    ("nmi_complex", lambda: nmi(X.to(torch.complex64), Y), r"2-D real array"),
    (
        "nmi_float_labels",
        lambda: nmi(X, Y.double() / 3),
        r"labels must be class ids \(integers or strings\), got float64 values",
    ),
    ("nmi_labels_short", lambda: nmi(X, Y[:5]), r"labels has shape \(5,\) but emb has 12 rows"),
    ("nmi_labels_2d", lambda: nmi(X, Y[:, None]), r"labels has shape \(12, 1\) but emb has 12 rows"),
    ("nmi_negative_seed", lambda: nmi(X, Y, seed=-1), r"seed must be a non-negative integer, got -1"),
    ("nmi_float_seed", lambda: nmi(X, Y, seed=0.5), r"seed must be a non-negative integer, got 0.5"),
    ("nmi_zero_restarts", lambda: nmi(X, Y, restarts=0), r"restarts must be >= 1, got 0"),
]


@pytest.mark.parametrize("call,message", [c[1:] for c in ERRORS], ids=[c[0] for c in ERRORS])
def test_bad_input_is_one_clear_error(call, message):
    with pytest.raises(ValueError, match=message) as caught:
        call()
    assert "\n" not in str(caught.value)


WANT = retrieval_metrics(X, Y, ks=(1, 2))
WANT_NMI = nmi(X, Y)

CORRECT = {
    "rm_numpy_inputs": lambda: retrieval_metrics(X.numpy(), Y.numpy(), ks=(1, 2)) == WANT,
    "rm_list_inputs": lambda: retrieval_metrics(X.tolist(), Y.tolist(), ks=(1, 2)) == WANT,
    "rm_half_inputs": lambda: retrieval_metrics(X.half(), Y, ks=(1, 2))["recall@1"] == pytest.approx(WANT["recall@1"]),
    "rm_float64_inputs": lambda: retrieval_metrics(X.double(), Y, ks=(1, 2)) == pytest.approx(WANT),
    "rm_duplicate_ks": lambda: retrieval_metrics(X, Y, ks=(2, 1, 2, 1)) == WANT,
    "rm_some_singleton_queries": lambda: (
        retrieval_metrics(X, torch.tensor([0, 0, 1, 2, 3, 3, 4, 5, 6, 6, 6, 7]), ks=(1,))["num_excluded_queries"] == 5
    ),
    "rm_negative_huge_labels": lambda: retrieval_metrics(X, (Y - 7) * 10**15, ks=(1, 2)) == WANT,
    "rm_all_one_class": lambda: retrieval_metrics(X, torch.zeros(12, dtype=torch.long), ks=(1, 11))["recall@1"] == 1.0,
    "rm_identical_rows": lambda: retrieval_metrics(torch.ones(12, 8), Y, ks=(1,))["num_queries"] == 12,
    "nmi_one_class": lambda: nmi(X, torch.zeros(12, dtype=torch.long)) == 1.0,
    "nmi_every_row_its_class": lambda: nmi(X, torch.arange(12)) == 1.0,
    "nmi_identical_rows": lambda: nmi(torch.ones(12, 8), Y) == 0.0,
    "nmi_string_labels": lambda: nmi(X, np.array(list("abcabcabcabc"))) == WANT_NMI,
    "nmi_numpy_inputs": lambda: nmi(X.numpy(), Y.numpy()) == WANT_NMI,
    "nmi_rows_scaled_1e30": lambda: nmi(X * 1e30, Y) == WANT_NMI,  # was 0.0 (overflow)
    "nmi_rows_scaled_1e-30": lambda: nmi(X * 1e-30, Y) == WANT_NMI,  # was 0.227 (underflow)
    "nmi_integer_embeddings": lambda: (
        nmi(torch.tensor([[1, 0], [2, 0], [0, 3], [0, 1]]), torch.tensor([0, 0, 1, 1])) == 1.0
    ),
    "nmi_zero_row": lambda: 0.0 <= nmi(ZERO_ROW, Y) <= 1.0,
    "nmi_two_rows_two_classes": lambda: nmi(X[:2], Y[:2]) == 1.0,
    "nmi_bool_labels": lambda: nmi(X, Y > 0) == nmi(X, (Y > 0).long()),
}


@pytest.mark.parametrize("check", list(CORRECT.values()), ids=list(CORRECT))
def test_odd_but_valid_input_gives_the_correct_result(check):
    assert check()


# Found by this module in ranklist/evaluation/retrieval.py, then fixed there: each was wrong before.
GAPS = {
    "rm_rows_scaled_1e20": (
        lambda: retrieval_metrics(X * 1e20, Y, ks=(1, 2)) == WANT,
        "F.normalize overflows in float32: map@r 0.162 instead of 0.125",
    ),
    "rm_rows_scaled_1e-30": (
        lambda: retrieval_metrics(X * 1e-30, Y, ks=(1, 2)) == WANT,
        "F.normalize underflows in float32: recall@2 0.417 instead of 0.5",
    ),
    "rm_fractional_k": (
        lambda: _raises_value_error(lambda: retrieval_metrics(X, Y, ks=(1.5,))),
        "ks=(1.5,) is silently read as 1",
    ),
    "rm_k_not_a_number": (
        lambda: _raises_value_error(lambda: retrieval_metrics(X, Y, ks=("a",)), "ks"),
        "ks=('a',) gives int()'s message, which does not name ks",
    ),
    "rm_ks_an_int": (
        lambda: _raises_value_error(lambda: retrieval_metrics(X, Y, ks=1), "ks"),
        "ks=1 raises TypeError 'int' object is not iterable",
    ),
    "rm_zero_row": (
        lambda: all(
            0 <= v <= 1 for k, v in retrieval_metrics(ZERO_ROW, Y, ks=(1,)).items() if not k.startswith("num_")
        ),
        "an all-zero row (a model can output one) must not break the evaluation: similarity 0 to every item",
    ),
}


def _raises_value_error(call, word=""):
    try:
        call()
    except ValueError as error:
        return word in str(error)
    return False


@pytest.mark.parametrize("check", [c for c, _ in GAPS.values()], ids=list(GAPS))
def test_gaps_found_in_retrieval_metrics_are_closed(check):
    assert check()
