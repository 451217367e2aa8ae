"""The paper's picture: pair sampling, distances and wrong-side shares against slow references."""

from __future__ import annotations

import itertools
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ranklist.evaluation import Embedded
from ranklist.reporting.pair_distances import Boundaries, PairDistances, loss_boundaries, pair_distances, sample_pairs
from ranklist.reporting.run_report import write_pair_picture


def _reference_pairs(labels, gallery_labels=None):
    """Every (positive, negative) pair by brute force."""
    if gallery_labels is None:
        pairs = list(itertools.combinations(range(len(labels)), 2))
        gallery_labels = labels
    else:
        pairs = list(itertools.product(range(len(labels)), range(len(gallery_labels))))
    pos = sorted((i, j) for i, j in pairs if labels[i] == gallery_labels[j])
    neg = sorted((i, j) for i, j in pairs if labels[i] != gallery_labels[j])
    return pos, neg


def _as_set(pairs):
    return sorted(zip(pairs.queries.tolist(), pairs.gallery.tolist()))


@pytest.mark.parametrize("query_gallery", [False, True])
def test_small_split_has_every_pair(query_gallery):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 5, size=23)
    gallery = rng.integers(0, 6, size=17) if query_gallery else None
    sample = sample_pairs(labels, gallery, max_pairs=10_000)
    pos, neg = _reference_pairs(labels, gallery)
    assert _as_set(sample.positive) == pos and sample.positive.total == len(pos)
    assert _as_set(sample.negative) == neg and sample.negative.total == len(neg)


def test_large_split_is_subsampled_seeded_and_valid():
    labels = np.repeat(np.arange(40), 6)  # 600 positive pairs, 28,080 negative
    a = sample_pairs(labels, max_pairs=100, seed=3)
    b = sample_pairs(labels, max_pairs=100, seed=3)
    assert len(a.positive.queries) == len(a.negative.queries) == 100
    assert (a.positive.total, a.negative.total) == (600, 240 * 239 // 2 - 600)
    assert _as_set(a.positive) == _as_set(b.positive) and _as_set(a.negative) == _as_set(b.negative)
    assert (labels[a.positive.queries] == labels[a.positive.gallery]).all()
    assert (labels[a.negative.queries] != labels[a.negative.gallery]).all()
    assert (a.negative.queries != a.negative.gallery).all()


def test_distances_and_shares_match_a_slow_reference():
    torch.manual_seed(0)
    labels = np.array([0, 0, 1, 1, 2, 2, 2])
    emb = torch.randn(7, 5, dtype=torch.float64)
    sample = sample_pairs(labels)
    d = pair_distances(emb, sample)
    unit = [v / np.linalg.norm(v) for v in emb.numpy()]
    pos, neg = _reference_pairs(labels)
    np.testing.assert_allclose(d.positive, [np.linalg.norm(unit[i] - unit[j]) for i, j in pos], rtol=1e-6)
    np.testing.assert_allclose(d.negative, [np.linalg.norm(unit[i] - unit[j]) for i, j in neg], rtol=1e-6)
    bounds = Boundaries(negative=1.2, positive=0.8)
    shares = d.wrong_side(bounds)
    assert shares["positives_beyond_alpha_minus_m"] == pytest.approx(np.mean([x > 0.8 for x in d.positive]))
    assert shares["negatives_within_alpha"] == pytest.approx(np.mean([x < 1.2 for x in d.negative]))


def test_boundaries_come_from_the_loss_config():
    assert loss_boundaries("rll", "cvpr2019", {}) == Boundaries(1.2, pytest.approx(0.8))
    assert loss_boundaries("rll", "tpami2021_code", {}) == Boundaries(1.2, pytest.approx(0.8))  # RLL-Simpler: 1 -/+ m/2
    assert loss_boundaries("rll", "default", {"alpha": 1.4, "margin": 0.2}) == Boundaries(1.4, pytest.approx(1.2))
    assert loss_boundaries("pml_ranked_list", None, {}) == Boundaries(1.2, pytest.approx(0.8))
    assert loss_boundaries("contrastive", None, {}) is None


def _embedded(n_classes=6, per_class=4, dim=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n_classes).repeat_interleave(per_class)
    final = {"L": torch.randn(len(labels), dim, generator=g), "H": torch.randn(len(labels), dim, generator=g)}
    baseline = {"H": torch.randn(len(labels), 2 * dim, generator=g)}
    return {"final": Embedded(final, labels), "baseline": Embedded(baseline, labels)}


def test_picture_written_with_baseline_and_cache(tmp_path):
    loss = SimpleNamespace(name="rll", preset="default", params={})
    embedded = _embedded()
    cache = tmp_path / "cache" / "key.pairs.npz"
    plots, summary = write_pair_picture(tmp_path / "run", loss, embedded, seed=0, baseline_cache=cache)
    assert (tmp_path / "run" / plots["pair distances before / after training"]).stat().st_size > 0
    assert summary["level"] == "H" and summary["alpha"] == 1.2 and summary["alpha_minus_m"] == pytest.approx(0.8)
    assert set(summary["wrong_side"]) == {"before", "after"}
    json.dumps(summary)
    # A run that reads the baseline's metrics from the cache gets the same "before" panel.
    _, again = write_pair_picture(tmp_path / "run2", loss, {"final": embedded["final"]}, seed=0, baseline_cache=cache)
    assert again["wrong_side"]["before"] == summary["wrong_side"]["before"]
    # Without a baseline and without boundaries: the "after" histograms alone.
    _, plain = write_pair_picture(
        tmp_path / "run3",
        SimpleNamespace(name="contrastive", preset=None, params={}),
        {"final": embedded["final"]},
        seed=0,
    )
    assert "wrong_side" not in plain and set(plain["median"]) == {"after"}


def test_query_gallery_picture(tmp_path):
    g = torch.Generator().manual_seed(0)
    q_labels, g_labels = torch.tensor([0, 1, 2, 3]), torch.tensor([0, 0, 1, 2, 3, 3])
    final = Embedded({"H": torch.randn(4, 8, generator=g)}, q_labels, {"H": torch.randn(6, 8, generator=g)}, g_labels)
    _, summary = write_pair_picture(tmp_path, SimpleNamespace(name="rll", preset=None, params={}), {"final": final})
    assert (summary["positive_pairs"], summary["negative_pairs"]) == (6, 18)


def test_pair_distances_empty_kind_is_nan_share():
    d = PairDistances(np.zeros(0), np.array([0.5, 1.5]))
    shares = d.wrong_side(Boundaries(1.2, 0.8))
    assert np.isnan(shares["positives_beyond_alpha_minus_m"]) and shares["negatives_within_alpha"] == 0.5
