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
    # faiss k-means starts from random points, so a cluster may be split and two merged: NMI
    # stays near, not at, 1 for perfectly separated classes.
    assert nmi(emb, labels, seed=0, restarts=5) > 0.9
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
