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


def fingerprint(tag="a"):
    from ranklist.models.fingerprint import ModelFingerprint

    return ModelFingerprint(tag * 64, {"image_size": 32, "resize": 36, "recipe": "paper"})


def test_items_and_model_round_trip_and_add(tmp_path):
    from ranklist.retrieval import Items, add_to_index, next_ids

    x, labels = clustered(60, dim=16)
    items = Items(np.arange(40), labels[:40], np.array([f"/data/{i}.jpg" for i in range(40)]))
    index = build_index(x[:40], items, model=fingerprint(), meta={"class_names": ["c"] * 50})
    add_to_index(
        index,
        x[40:],
        Items(next_ids(index, 20), labels[40:], np.array([f"/new/{i}.jpg" for i in range(20)])),
        fingerprint(),
    )
    save_index(index, tmp_path / "idx")
    again = load_index(tmp_path / "idx")
    assert len(again) == 60 and again.ids.tolist() == list(range(60)) and again.labels.tolist() == labels.tolist()
    assert again.items.paths[45] == "/new/5.jpg" and again.model == fingerprint() and again.meta["count"] == 60
    np.testing.assert_array_equal(search(again, x, 1)[1][:, 0], np.arange(60))  # every item finds itself


def test_another_models_queries_and_additions_are_refused():
    from ranklist.retrieval import Items, add_to_index

    x, _ = clustered(30, dim=8)
    index = build_index(x, model=fingerprint("a"))
    with pytest.raises(
        ValueError, match="the queries come from another model than the index's \\(model weights differ"
    ):
        search(index, x[:2], 3, model=fingerprint("b"))
    other_prep = fingerprint("a").__class__("a" * 64, {"image_size": 64, "resize": 72, "recipe": "paper"})
    with pytest.raises(ValueError, match="preprocessing differ"):
        search(index, x[:2], 3, model=other_prep)
    with pytest.raises(ValueError, match="the added embeddings come from another model"):
        add_to_index(index, x[:2], Items(np.array([100, 101])), fingerprint("b"))
    assert len(index) == 30
    search(index, x[:2], 3, model=fingerprint("a"))  # the same model is served
    search(index, x[:2], 3)  # an embeddings file without a model is accepted


def test_add_errors():
    from ranklist.retrieval import Items, add_to_index

    x, labels = clustered(20, dim=8)
    index = build_index(x[:10], labels=labels[:10])
    with pytest.raises(ValueError, match="added ids already in the index: \\[3\\]"):
        add_to_index(index, x[10:12], Items(np.array([3, 50]), labels[10:12]))
    with pytest.raises(ValueError, match="the index has labels: the added items must match it"):
        add_to_index(index, x[10:12], Items(np.array([60, 61])))
    with pytest.raises(ValueError, match="added embeddings have dimension 4"):
        add_to_index(index, np.ones((2, 4)), Items(np.array([60, 61]), labels[:2]))
    with pytest.raises(ValueError, match="ids must be unique"):
        Items(np.array([1, 1]))
    assert len(index) == 10


@pytest.mark.parametrize("kind", ["flat", "ivf", "ivfpq"])
def test_stored_vectors_give_back_the_items(kind):
    from ranklist.retrieval import stored_vectors

    x, _ = clustered(400, dim=16)
    index = build_index(x, kind=kind, nlist=4, nprobe=4, m=8)
    back = stored_vectors(index, np.array([0, 7, 399]))
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    assert np.abs(back - xn[[0, 7, 399]]).max() < (1e-6 if kind != "ivfpq" else 0.5)


def test_save_never_replaces_what_is_not_an_index(tmp_path):
    x, _ = clustered(20, dim=8)
    index = build_index(x)
    user = tmp_path / "photos"
    user.mkdir()
    (user / "holiday.jpg").write_bytes(b"precious")
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "summary.json").write_text("{}")
    (tmp_path / "file.txt").write_text("keep me")
    for target in (user, run, tmp_path / "file.txt"):
        for replace in (False, True):
            with pytest.raises(ValueError, match="exists and is not an index"):
                save_index(index, target, replace=replace)
    assert (user / "holiday.jpg").read_bytes() == b"precious" and (run / "summary.json").exists()
    assert (tmp_path / "file.txt").read_text() == "keep me"
    save_index(index, tmp_path / "idx")
    with pytest.raises(ValueError, match="already holds an index; pass --replace"):
        save_index(index, tmp_path / "idx")
    save_index(build_index(x[:5]), tmp_path / "idx", replace=True)
    assert len(load_index(tmp_path / "idx")) == 5
    (tmp_path / "empty").mkdir()
    save_index(index, tmp_path / "empty")  # an empty folder holds nothing to lose
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "file.txt", "idx", "photos", "run"]


def test_a_format_1_index_is_refused_with_a_rebuild_hint(tmp_path):
    import json

    import faiss

    x, labels = clustered(10, dim=8)
    folder = tmp_path / "old"
    folder.mkdir()
    faiss.write_index(build_index(x).index, str(folder / "index.faiss"))
    meta = {"kind": "flat", "dim": 8, "count": 10, "labels": labels.tolist(), "ids": ["0.jpg"] * 10, "format": 1}
    (folder / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(
        ValueError, match="is format 1, which ranklist no longer reads: rebuild it with `ranklist index`"
    ):
        load_index(folder)


def test_embeddings_file_round_trip_with_model(tmp_path):
    from ranklist.retrieval.embeddings_file import EmbeddingsFile, read_embeddings, write_embeddings

    x, labels = clustered(12, dim=8)
    write_embeddings(
        EmbeddingsFile(x, labels, np.array([f"{i}.png" for i in range(12)]), {"L": x[:, :4]}, fingerprint()),
        tmp_path / "e.npz",
    )
    back = read_embeddings(tmp_path / "e.npz")
    assert back.model == fingerprint() and back.paths[2] == "2.png" and back.levels["L"].shape == (12, 4)
    np.savez(tmp_path / "bad.npz", embedding=x, model=np.array("{not json"))
    with pytest.raises(ValueError, match="'model' is not a model fingerprint"):
        read_embeddings(tmp_path / "bad.npz")
    (tmp_path / "cut.npz").write_bytes((tmp_path / "e.npz").read_bytes()[:100])
    with pytest.raises(ValueError, match="cannot read embeddings file"):
        read_embeddings(tmp_path / "cut.npz")
    with pytest.raises(ValueError, match="'labels' has 3 rows but 'embedding' has 12"):
        write_embeddings(EmbeddingsFile(x, labels[:3]), tmp_path / "f.npz")


def _saved(tmp_path, n=40):
    from ranklist.retrieval import Items

    x, labels = clustered(n, dim=8)
    thumbs = np.zeros((n, 4, 4, 3), dtype=np.uint8)
    save_index(build_index(x, Items(np.arange(n), labels, thumbnails=thumbs)), tmp_path / "idx")
    return tmp_path / "idx"


@pytest.mark.parametrize("name", ["index.faiss", "items.npz", "thumbnails.npy"])
def test_a_damaged_file_is_refused_by_name(tmp_path, name):
    """8 overwritten bytes in the middle of any file: refused, never searched (faiss read them as vectors)."""
    folder = _saved(tmp_path)
    data = bytearray((folder / name).read_bytes())
    middle = len(data) // 2
    data[middle : middle + 8] = b"\x7f" * 8
    (folder / name).write_bytes(bytes(data))
    with pytest.raises(ValueError, match=f"corrupt index at .*: {name} has SHA-256 .*meta.json records"):
        load_index(folder)


def test_edited_counts_and_missing_or_unrecorded_files_are_refused(tmp_path):
    import json

    folder = _saved(tmp_path)
    meta = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(json.dumps({**meta, "count": 41}))
    with pytest.raises(ValueError, match="vectors 40, items 40, meta.json count 41"):
        load_index(folder)
    (folder / "meta.json").write_text(json.dumps(meta))
    (folder / "thumbnails.npy").unlink()
    with pytest.raises(ValueError, match="thumbnails.npy is missing"):
        load_index(folder)
    files = {k: v for k, v in meta["files"].items() if k != "thumbnails.npy"}
    np.save(folder / "thumbnails.npy", np.zeros((40, 4, 4, 3), dtype=np.uint8))
    (folder / "meta.json").write_text(json.dumps({**meta, "files": files}))
    with pytest.raises(ValueError, match="thumbnails.npy is not recorded in meta.json"):
        load_index(folder)


def test_an_index_from_before_checksums_loads_with_a_warning(tmp_path, capsys):
    import json

    folder = _saved(tmp_path)
    meta = json.loads((folder / "meta.json").read_text())
    del meta["files"]
    (folder / "meta.json").write_text(json.dumps({**meta, "format": 2}))
    assert len(load_index(folder)) == 40
    assert "records no checksums" in capsys.readouterr().err


def test_replace_keeps_a_users_files_and_names_a_link(tmp_path):
    folder = _saved(tmp_path)
    (folder / "notes.txt").write_text("mine")
    again = load_index(folder)
    with pytest.raises(ValueError, match=r"holds an index and other files \(notes.txt\)"):
        save_index(again, folder, replace=True)
    assert (folder / "notes.txt").read_text() == "mine"
    (folder / "notes.txt").unlink()
    (tmp_path / "link").symlink_to(folder)
    with pytest.raises(ValueError, match="is a symbolic link: refusing to replace what it points to"):
        save_index(again, tmp_path / "link", replace=True)
    save_index(again, folder, replace=True)
