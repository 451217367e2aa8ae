"""Statistics of a tuned comparison: a mean with its 95 % t-interval over seeds, the paired
difference of two losses over the seeds they share, and a paired bootstrap over test queries.

    t_interval([0.41, 0.42, 0.40, 0.43, 0.41])       # Interval(mean, std, low, high, n)
    paired_difference({0: 0.41, 1: 0.42}, {0: 0.40, 1: 0.40})
    paired_bootstrap(ap_loss_a, ap_loss_b, resamples=10_000, seed=0)

Seeds are paired because a seed fixes the same initialisation of the new layers, the same batches
and the same crops for both losses; queries are paired because both models rank the same test set.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95
BOOTSTRAP_CHUNK = 256  # resamples drawn at once (a chunk x queries index matrix)


@dataclass(frozen=True)
class Interval:
    """A mean over n values with its sample standard deviation and two-sided t-interval (NaN for n < 2)."""

    mean: float
    std: float
    low: float
    high: float
    n: int


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """mean +- t_{(1+c)/2, n-1} * s / sqrt(n), s the sample standard deviation (ddof 1)."""
    from scipy.stats import t

    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or len(values) == 0:
        raise ValueError(f"need a non-empty list of values, got shape {values.shape}")
    mean, n = float(values.mean()), len(values)
    if n < 2:
        return Interval(mean, math.nan, math.nan, math.nan, n)
    std = float(values.std(ddof=1))
    half = float(t.ppf((1 + confidence) / 2, n - 1)) * std / math.sqrt(n)
    return Interval(mean, std, mean - half, mean + half, n)


def paired_difference(
    values: Mapping[int, float], reference: Mapping[int, float], confidence: float = CONFIDENCE
) -> Interval:
    """The t-interval of values[seed] - reference[seed] over the seeds both have."""
    seeds = sorted(set(values) & set(reference))
    if not seeds:
        raise ValueError(f"no seed in common to pair: {sorted(values)} and {sorted(reference)}")
    return t_interval([values[s] - reference[s] for s in seeds], confidence)


@dataclass(frozen=True)
class Bootstrap:
    """mean(a - b) over the queries, the percentile interval of its resampled means, and the share
    of resamples where the difference is <= 0 (how often a does not beat b)."""

    difference: float
    low: float
    high: float
    not_above: float
    resamples: int
    queries: int


def paired_bootstrap(
    a: Sequence[float], b: Sequence[float], *, resamples: int = 10_000, seed: int = 0, confidence: float = CONFIDENCE
) -> Bootstrap:
    """Resample the queries with replacement (the same draw for a and b, who scored the same queries).

    Resample i draws rng.integers(0, n, n) in order from default_rng(seed): chunks of draws give the
    same stream as one draw per resample, so a slow loop reproduces it exactly.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape or len(a) == 0:
        raise ValueError(
            f"need two equally long non-empty lists of per-query values, got {np.shape(a)} and {np.shape(b)}"
        )
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    diff = a - b
    rng, n = np.random.default_rng(seed), len(diff)
    means = np.empty(resamples)
    for start in range(0, resamples, BOOTSTRAP_CHUNK):
        stop = min(start + BOOTSTRAP_CHUNK, resamples)
        means[start:stop] = diff[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return Bootstrap(float(diff.mean()), float(low), float(high), float((means <= 0).mean()), resamples, n)
