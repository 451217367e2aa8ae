import math

import numpy as np
import pytest
import scipy.stats

from ranklist.evaluation.paired import paired_bootstrap, paired_difference, t_interval


@pytest.mark.parametrize(
    "values", [[0.41, 0.42, 0.40, 0.43, 0.41], [0.1, 0.9], list(np.random.default_rng(3).normal(0.5, 0.1, 12))]
)
def test_the_t_interval_is_scipys(values):
    got = t_interval(values)
    low, high = scipy.stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=scipy.stats.sem(values))
    assert (got.low, got.high) == (pytest.approx(low, abs=1e-12), pytest.approx(high, abs=1e-12))
    assert got.std == pytest.approx(np.std(values, ddof=1)) and got.n == len(values)
    assert t_interval(values, 0.99).high > got.high


def test_one_value_has_no_interval_and_no_value_is_an_error():
    one = t_interval([0.5])
    assert one.mean == 0.5 and math.isnan(one.std) and math.isnan(one.low)
    with pytest.raises(ValueError, match="non-empty"):
        t_interval([])


def test_paired_differences_pair_by_seed_over_the_seeds_both_have():
    ours = {0: 0.50, 1: 0.52, 2: 0.49, 3: 0.51}
    theirs = {1: 0.50, 2: 0.48, 3: 0.47, 4: 0.60}  # seed 0 and 4 have no partner
    got = paired_difference(ours, theirs)
    assert got.n == 3 and got.mean == pytest.approx(np.mean([0.02, 0.01, 0.04]))
    low, high = scipy.stats.t.interval(0.95, 2, loc=got.mean, scale=scipy.stats.sem([0.02, 0.01, 0.04]))
    assert (got.low, got.high) == (pytest.approx(low), pytest.approx(high))
    with pytest.raises(ValueError, match="no seed in common"):
        paired_difference({0: 1.0}, {1: 1.0})


def _slow_bootstrap(a, b, resamples, seed, confidence=0.95):
    """One resample at a time, every mean summed by hand."""
    rng = np.random.default_rng(seed)
    n, means = len(a), []
    for _ in range(resamples):
        picks = rng.integers(0, n, size=n)
        means.append(sum(a[i] - b[i] for i in picks) / n)
    means = np.array(means)
    return np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2]), float(np.mean(means <= 0))


@pytest.mark.parametrize("resamples", [1, 300, 1000])
def test_the_paired_bootstrap_matches_a_slow_explicit_one(resamples):
    rng = np.random.default_rng(0)
    a = rng.random(137)
    b = np.clip(a - 0.02 + rng.normal(0, 0.1, 137), 0, 1)
    got = paired_bootstrap(a, b, resamples=resamples, seed=7)
    (low, high), not_above = _slow_bootstrap(a, b, resamples, 7)
    assert (got.low, got.high, got.not_above) == (
        pytest.approx(low, abs=1e-12),
        pytest.approx(high, abs=1e-12),
        not_above,
    )
    assert got.difference == pytest.approx(np.mean(a - b)) and got.queries == 137 and got.resamples == resamples


def test_the_bootstrap_interval_shrinks_with_more_queries_and_holds_the_difference():
    rng = np.random.default_rng(1)
    few, many = rng.random(50), rng.random(5000)
    narrow = paired_bootstrap(many + 0.05, many + rng.normal(0, 0.2, 5000), resamples=500)
    wide = paired_bootstrap(few + 0.05, few + rng.normal(0, 0.2, 50), resamples=500)
    assert narrow.high - narrow.low < wide.high - wide.low
    assert narrow.low < narrow.difference < narrow.high
    with pytest.raises(ValueError, match="equally long"):
        paired_bootstrap([0.1, 0.2], [0.1])
