"""Retrieval metrics against a brute-force float64 reference, and against pytorch-metric-learning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ranklist.evaluation.retrieval as retrieval_module
from ranklist.evaluation import retrieval_metrics


def reference_metrics(emb, labels, ks, gallery=None, gallery_labels=None):
    """Per query: similarities one by one, a full sort by (-similarity, index), then the formulas."""
    q = torch.nn.functional.normalize(emb.double(), dim=1)
    self_mode = gallery is None
    g = q if self_mode else torch.nn.functional.normalize(gallery.double(), dim=1)
    gl = labels if self_mode else gallery_labels
    recalls = {k: [] for k in ks}
    maps, rps, excluded = [], [], 0
    for i in range(len(q)):
        items = [j for j in range(len(g)) if not (self_mode and j == i)]
        sims = {j: float((q[i] * g[j]).sum()) for j in items}
        ranking = sorted(items, key=lambda j: (-sims[j], j))
        rel = [int(gl[j]) == int(labels[i]) for j in ranking]
        r = sum(rel)
        if r == 0:
            excluded += 1
            continue
        for k in ks:
            recalls[k].append(any(rel[:k]))
        hits = 0
        precision_sum = 0.0
        for pos in range(r):
            if rel[pos]:
                hits += 1
                precision_sum += hits / (pos + 1)
        maps.append(precision_sum / r)
        rps.append(sum(rel[:r]) / r)
    out = {f"recall@{k}": float(np.mean(v)) for k, v in recalls.items()}
    out.update(
        {
            "map@r": float(np.mean(maps)),
            "r_precision": float(np.mean(rps)),
            "num_queries": len(maps),
            "num_excluded_queries": excluded,
        }
    )
    return out


def assert_same(got, want):
    assert got.keys() == want.keys()
    for key in want:
        assert got[key] == pytest.approx(want[key], abs=1e-12), key


def tied_embeddings(n, seed):
    """Rows with exactly two ones out of six: every similarity is 0, 1/2 or 1 with identical
    rounding whatever the summation order, so ties are real ties."""
    g = torch.Generator().manual_seed(seed)
    rows = [torch.randperm(6, generator=g)[:2] for _ in range(n)]
    emb = torch.zeros(n, 6)
    for i, cols in enumerate(rows):
        emb[i, cols] = 1.0
    return emb


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_self_retrieval_matches_reference_with_ties_and_duplicates(seed):
    emb = tied_embeddings(40, seed)
    labels = torch.randint(0, 8, (40,), generator=torch.Generator().manual_seed(seed))
    ks = (1, 2, 4, 8, 16)
    assert_same(retrieval_metrics(emb, labels, ks), reference_metrics(emb, labels, ks))


def test_random_data_with_duplicates_and_singletons(monkeypatch):
    g = torch.Generator().manual_seed(3)
    emb = torch.randn(60, 5, generator=g, dtype=torch.float64)
    emb = torch.cat([emb, emb[:10]])  # exact duplicates (other items at distance 0)
    labels = torch.cat([torch.randint(0, 12, (60,), generator=g), torch.arange(100, 110)])
    ks = (1, 3, 10)
    want = reference_metrics(emb, labels, ks)
    assert want["num_excluded_queries"] > 0
    assert_same(retrieval_metrics(emb, labels, ks), want)
    monkeypatch.setattr(retrieval_module, "PAIRS_PER_BLOCK", 70 * 7)  # several blocks
    assert_same(retrieval_metrics(emb, labels, ks), want)


def test_query_gallery_mode_excludes_nothing():
    g = torch.Generator().manual_seed(4)
    query, gallery = tied_embeddings(25, 4), tied_embeddings(50, 5)
    ql, gl = torch.randint(0, 6, (25,), generator=g), torch.randint(0, 6, (50,), generator=g)
    ks = (1, 10, 20, 30, 40, 50)
    got = retrieval_metrics(query, ql, ks, gallery=gallery, gallery_labels=gl)
    assert_same(got, reference_metrics(query, ql, ks, gallery, gl))


def test_agrees_with_pytorch_metric_learning():
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

    g = torch.Generator().manual_seed(5)
    centres = torch.randn(30, 16, generator=g)
    labels = torch.randint(0, 30, (300,), generator=g)
    emb = torch.nn.functional.normalize(centres[labels] + 0.8 * torch.randn(300, 16, generator=g), dim=1)
    calc = AccuracyCalculator(include=("precision_at_1", "mean_average_precision_at_r", "r_precision"))
    theirs = calc.get_accuracy(emb, labels, emb, labels, ref_includes_query=True)
    ours = retrieval_metrics(emb, labels, ks=(1,))
    assert ours["recall@1"] == pytest.approx(theirs["precision_at_1"], abs=1e-6)
    assert ours["map@r"] == pytest.approx(theirs["mean_average_precision_at_r"], abs=1e-6)
    assert ours["r_precision"] == pytest.approx(theirs["r_precision"], abs=1e-6)
    query, ql = emb[:100], labels[:100]
    theirs = calc.get_accuracy(query, ql, emb[100:], labels[100:], ref_includes_query=False)
    ours = retrieval_metrics(query, ql, ks=(1,), gallery=emb[100:], gallery_labels=labels[100:])
    assert ours["recall@1"] == pytest.approx(theirs["precision_at_1"], abs=1e-6)
    assert ours["map@r"] == pytest.approx(theirs["mean_average_precision_at_r"], abs=1e-6)


def test_float16_input_is_computed_in_float32():
    emb = tied_embeddings(20, 6)
    labels = torch.arange(20) % 5
    assert_same(retrieval_metrics(emb.half(), labels, (1, 2)), retrieval_metrics(emb, labels, (1, 2)))


def test_errors_name_the_bad_value():
    emb, labels = torch.randn(10, 4), torch.arange(10) % 3
    with pytest.raises(ValueError, match="labels has 9 entries but emb has 10 rows"):
        retrieval_metrics(emb, labels[:9])
    with pytest.raises(
        ValueError, match=r"ks must be between 1 and the gallery size 9 \(query excluded\), got \[1, 10\]"
    ):
        retrieval_metrics(emb, labels, ks=(1, 10))
    with pytest.raises(ValueError, match="gallery has dimension 3 but emb has 4"):
        retrieval_metrics(emb, labels, gallery=torch.randn(5, 3), gallery_labels=labels[:5])
    with pytest.raises(ValueError, match="gallery_labels has 4 entries but gallery has 5 rows"):
        retrieval_metrics(emb, labels, gallery=torch.randn(5, 4), gallery_labels=labels[:4])
    with pytest.raises(ValueError, match="labels must be a 1-D integer array"):
        retrieval_metrics(emb, labels.float())
    with pytest.raises(ValueError, match="emb has non-finite values"):
        retrieval_metrics(emb.masked_fill(emb > 1, float("nan")), labels)
    with pytest.raises(ValueError, match="no query has a same-class item"):
        retrieval_metrics(emb, torch.arange(10))


@pytest.mark.parametrize("wanted", [3, 30])  # few rows: copied out; most rows: compared in place
def test_counting_against_each_rows_best_is_exact_either_way(wanted):
    sim = tied_embeddings(40, 5) @ tied_embeddings(50, 6).T  # values 0, 1/2, 1: many exact ties
    rows = torch.randperm(40, generator=torch.Generator().manual_seed(wanted))[:wanted].sort().values
    best = sim[rows, :1].clone()
    ahead, equal = retrieval_module._count_vs(sim, rows, best)
    want = [(int((sim[r] > b).sum()), int((sim[r] == b).sum())) for r, b in zip(rows.tolist(), best[:, 0].tolist())]
    assert list(zip(ahead.tolist(), equal.tolist())) == want


@pytest.mark.parametrize(
    "embeddings",
    [lambda: tied_embeddings(60, 3), lambda: torch.randn(60, 3, generator=torch.Generator().manual_seed(3))],
)
def test_metrics_exact_when_most_queries_are_counted_over_the_row(embeddings):
    """Pairs among unrelated rows: most queries' pair lies outside their top-1 window, so most
    rows are counted in place over the whole block (ties included)."""
    emb, labels, ks = embeddings(), torch.arange(60) // 2, (1, 3, 10)
    assert_same(retrieval_metrics(emb, labels, ks), reference_metrics(emb, labels, ks))


def test_first_relevant_rank_read_from_the_top_k_or_counted(monkeypatch):
    """Ranks inside each query's top-k window are read off it; the rest are counted over the row.
    Both paths must agree with the reference (here many classes have their pair far away)."""
    g = torch.Generator().manual_seed(11)
    emb = torch.randn(80, 4, generator=g)
    labels = torch.arange(80) // 2  # pairs: R = 1, a window of one neighbour
    counted = []
    original = retrieval_module._counted_rank
    monkeypatch.setattr(
        retrieval_module,
        "_counted_rank",
        lambda sim, members, rows: counted.append(len(rows)) or original(sim, members, rows),
    )
    ks = (1, 5, 20)
    assert_same(retrieval_metrics(emb, labels, ks), reference_metrics(emb, labels, ks))
    assert 0 < sum(counted) < 80  # some queries resolved in the window, some counted
