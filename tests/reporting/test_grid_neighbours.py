"""The retrieval grid's neighbours: the chosen queries' top k under the metrics' tie rule."""

import numpy as np
import pytest
import torch

from ranklist.reporting.figures import neighbours_for_grid


def reference(emb, labels, queries, k, gallery=None, gallery_labels=None):
    """Sort each chosen query's gallery by (-cosine, index), itself left out in self-retrieval."""
    unit = lambda x: torch.nn.functional.normalize(torch.as_tensor(x, dtype=torch.float32), dim=1)  # noqa: E731
    self_retrieval = gallery is None
    gallery, gallery_labels = (emb, labels) if self_retrieval else (gallery, gallery_labels)
    sims = (unit(emb[queries]) @ unit(gallery).T).numpy()
    rows = []
    for row, query in zip(sims, queries):
        items = [j for j in range(len(gallery)) if not (self_retrieval and j == query)]
        rows.append(sorted(items, key=lambda j: (-row[j], j))[:k])
    rows = np.array(rows)
    return rows, gallery_labels[rows] == labels[queries][:, None]


@pytest.mark.parametrize("ties", [True, False])
def test_neighbours_of_the_chosen_queries_follow_the_tie_rule(ties):
    gen = np.random.default_rng(3)
    emb = (gen.integers(0, 2, (60, 4)) + 0.0) if ties else gen.standard_normal((60, 4))  # ties: many equal cosines
    emb[emb.sum(axis=1) == 0, 0] = 1.0
    labels = np.arange(60) % 7
    queries, neighbours, correct = neighbours_for_grid(emb, labels, 8, 5, seed=0)
    want, want_correct = reference(emb, labels, queries, 5)
    assert len(queries) == 8 and np.array_equal(neighbours, want) and np.array_equal(correct, want_correct)
    gallery, gallery_labels = gen.standard_normal((30, 4)), np.arange(30) % 7
    queries, neighbours, correct = neighbours_for_grid(emb, labels, 8, 5, 0, gallery, gallery_labels)
    want, want_correct = reference(emb, labels, queries, 5, gallery, gallery_labels)
    assert np.array_equal(neighbours, want) and np.array_equal(correct, want_correct)
