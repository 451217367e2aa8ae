import numpy as np
import pytest

from ranklist.retrieval import build_index, load_index, save_index, search


def clustered(n=2000, dim=32, classes=50, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim))
    labels = rng.integers(0, classes, n)
    return (centres[labels] + 0.3 * rng.normal(size=(n, dim))).astype(np.float32), labels


def brute_force(x, q, k):
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    return np.argsort(-(qn @ xn.T), axis=1, kind="stable")[:, :k]


def test_flat_search_is_exact():
    x, _ = clustered()
    index = build_index(x, ids=np.arange(len(x)) + 1000)
    scores, ids = search(index, x[:20], k=5)
    np.testing.assert_array_equal(ids - 1000, brute_force(x, x[:20], 5))
    assert np.all(np.diff(scores, axis=1) <= 1e-6)


@pytest.mark.parametrize("kind", ["ivf", "ivfpq"])
def test_approximate_indexes_find_the_true_neighbours(kind):
    x, _ = clustered()
    index = build_index(x, kind=kind, nlist=16, nprobe=8)
    _, ids = search(index, x[:200], k=10)
    truth = brute_force(x, x[:200], 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, truth)])
    assert recall > (0.9 if kind == "ivf" else 0.5)


def test_round_trip_and_corruption(tmp_path):
    x, labels = clustered(300)
    index = build_index(x, ids=np.array([f"img_{i}.jpg" for i in range(300)]), labels=labels)
    save_index(index, tmp_path / "idx")
    save_index(index, tmp_path / "idx", replace=True)  # replacing an existing index
    again = load_index(tmp_path / "idx")
    assert again.labels.tolist() == labels.tolist() and len(again) == 300
    assert search(again, x[:3], 2)[1][:, 0].tolist() == ["img_0.jpg", "img_1.jpg", "img_2.jpg"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]
    (tmp_path / "idx" / "index.faiss").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="corrupt index at"):
        load_index(tmp_path / "idx")
    with pytest.raises(FileNotFoundError, match="no index at"):
        load_index(tmp_path / "nothing")


def test_errors():
    x, _ = clustered(50)
    index = build_index(x)
    with pytest.raises(ValueError, match="queries have dimension 8 but the index holds dimension 32"):
        search(index, np.ones((1, 8)), 3)
    with pytest.raises(ValueError, match="k must be between 1 and the index size 50, got 51"):
        search(index, x[:1], 51)
    with pytest.raises(ValueError, match="unknown index kind 'hnsw'"):
        build_index(x, kind="hnsw")
