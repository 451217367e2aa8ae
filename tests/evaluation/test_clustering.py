import numpy as np
import pytest
import torch
from sklearn.metrics import normalized_mutual_info_score

from ranklist.evaluation import nmi, normalized_mutual_information


@pytest.mark.parametrize("seed", range(4))
def test_nmi_formula_matches_sklearn_arithmetic(seed):
    rng = np.random.default_rng(seed)
    clusters, classes = rng.integers(0, 7, 200), rng.integers(0, 5, 200)
    want = normalized_mutual_info_score(classes, clusters, average_method="arithmetic")
    assert normalized_mutual_information(clusters, classes) == pytest.approx(want, abs=1e-12)


def test_nmi_of_identical_and_independent_partitions():
    labels = np.repeat(np.arange(4), 16)
    assert normalized_mutual_information(labels, labels) == pytest.approx(1.0)
    assert normalized_mutual_information(labels, np.tile(np.arange(4), 16)) == pytest.approx(0.0, abs=1e-12)


def test_nmi_of_separated_clusters_is_one_and_seeded():
    g = torch.Generator().manual_seed(0)
    centres = torch.nn.functional.normalize(torch.randn(20, 32, generator=g), dim=1) * 10
    labels = torch.arange(20).repeat_interleave(10)
    emb = centres[labels] + 0.01 * torch.randn(200, 32, generator=g)
    assert nmi(emb, labels, seed=0) > 0.999  # greedy k-means++ seeds find every separated class
    noisy = centres[labels] + 8 * torch.randn(200, 32, generator=g)
    assert nmi(noisy, labels, seed=3) == nmi(noisy, labels, seed=3)


def test_nmi_close_to_pytorch_metric_learning():
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

    g = torch.Generator().manual_seed(1)
    centres = torch.randn(15, 16, generator=g)
    labels = torch.randint(0, 15, (300,), generator=g)
    emb = torch.nn.functional.normalize(centres[labels] + 0.9 * torch.randn(300, 16, generator=g), dim=1)
    theirs = AccuracyCalculator(include=("NMI",)).get_accuracy(emb, labels, emb, labels, True)["NMI"]
    assert nmi(emb, labels) == pytest.approx(theirs, abs=0.05)  # k-means noise only


def test_nmi_errors():
    with pytest.raises(ValueError, match=r"labels has shape \(3,\) but emb has 4 rows"):
        nmi(torch.randn(4, 2), torch.arange(3))


def _separated(seed, classes=30, per_class=20, dim=64):
    g = torch.Generator().manual_seed(seed)
    centres = torch.nn.functional.normalize(torch.randn(classes, dim, generator=g), dim=1) * 10
    labels = torch.arange(classes).repeat_interleave(per_class)
    return centres[labels] + 0.1 * torch.randn(classes * per_class, dim, generator=g), labels


@pytest.mark.parametrize("seed", range(10))
def test_nmi_is_exact_on_perfectly_separated_clusters(seed):
    # Issue 13: faiss's random start gave 0.917-0.949 here (two centroids in one cluster).
    emb, labels = _separated(seed)
    assert nmi(emb, labels, seed=seed) >= 0.999


def test_kmeans_plus_plus_seeds_one_point_per_separated_cluster_and_is_seeded():
    from ranklist.evaluation.clustering import kmeans_plus_plus

    emb, labels = _separated(3)
    data = torch.nn.functional.normalize(emb, dim=1).numpy()
    first = kmeans_plus_plus(data, 30, np.random.default_rng(7))
    assert sorted(labels[first].tolist()) == list(range(30))
    assert np.array_equal(first, kmeans_plus_plus(data, 30, np.random.default_rng(7)))


def test_kmeans_plus_plus_with_duplicate_rows_still_gives_k_distinct_rows():
    from ranklist.evaluation.clustering import kmeans_plus_plus

    data = np.repeat(np.eye(3, dtype=np.float32), 4, axis=0)  # 3 distinct points, 12 rows
    seeds = kmeans_plus_plus(data, 5, np.random.default_rng(0))
    assert len(set(seeds.tolist())) == 5
    assert len({tuple(data[i]) for i in seeds}) == 3


def test_kmeans_assign_rejects_restarts_below_one():
    from ranklist.evaluation.clustering import kmeans_assign

    with pytest.raises(ValueError, match="restarts must be >= 1, got 0"):
        kmeans_assign(np.zeros((4, 2), np.float32), 2, restarts=0)
