"""Every endpoint through FastAPI's test client, with both runtimes, and every kind of bad input."""

import asyncio
import io
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from ranklist.models import evaluation_embedding, load_model
from ranklist.retrieval import load_index
from ranklist.serving.embedders import load_embedder
from ranklist.serving.service import SearchService
from ranklist.serving.uploads import ServeLimits
from tests.serving.fixtures import draw, make_checkpoint

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from ranklist.serving.app import create_app  # noqa: E402

LOCAL = "http://127.0.0.1"  # the server answers only its own Host names (DNS rebinding)


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def client(served, runtime="pytorch", **limits):
    embedder = (
        load_embedder(served["checkpoint"], None) if runtime == "pytorch" else load_embedder(None, served["onnx"])
    )
    return TestClient(
        create_app(SearchService(load_index(served["index"]), embedder, ServeLimits(**limits))), base_url=LOCAL
    )


@pytest.mark.parametrize("runtime", ["pytorch", "onnxruntime"])
def test_search_and_embed_match_the_model(served, runtime):
    api = client(served, runtime)
    queries = [draw(1, 9), draw(5, 9, 70)]
    files = [("file", (f"q{i}.png", png(q), "image/png")) for i, q in enumerate(queries)]
    response = api.post("/search?k=3", files=files)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == 2 and all(len(r["neighbours"]) == 3 for r in results)
    # the reference: the checkpoint, its own evaluation transform, a brute-force cosine search
    model = load_model(served["checkpoint"]).eval()
    transform = model.preprocessing.transform(train=False)
    with torch.no_grad():
        expected = evaluation_embedding(model(torch.stack([transform(q) for q in queries]))).numpy()
    index = load_index(served["index"])
    stored = np.stack([index.index.reconstruct(i) for i in range(len(index))])
    truth = np.argsort(-(expected @ stored.T), axis=1, kind="stable")[:, :3]
    assert [[hit["id"] for hit in r["neighbours"]] for r in results] == index.ids[truth].tolist()
    first = results[0]["neighbours"][0]
    assert set(first) >= {"id", "label", "class_name", "path", "score"} and first["class_name"].startswith("class_")
    embedded = api.post("/embed", files=files[:1]).json()
    assert embedded["dim"] == 24 and np.abs(np.array(embedded["embeddings"][0]) - expected[0]).max() <= 1e-4


def test_items_thumbnails_neighbours_browse_and_page(served):
    api = client(served)
    info = api.get("/info").json()
    assert (
        info["items"] == 24
        and info["classes"] == 6
        and info["labelled"]
        and info["runtime"] == "pytorch"
        and info["kind"] == "flat"
    )
    assert api.get("/healthz").json() == {"status": "ok", "items": 24}
    page = api.get("/")
    assert page.status_code == 200 and "ranklist search" in page.text and "file-input" in page.text
    listed = api.get("/items?offset=2&limit=3").json()
    assert [item["id"] for item in listed["items"]] == [2, 3, 4] and listed["total"] == 24
    assert api.get("/items/5").json()["id"] == 5
    image = api.get("/items/5/image")
    assert image.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(image.content)).size[0] <= 160
    near = api.get("/items/5/neighbours?k=7").json()
    assert len(near["neighbours"]) == 7 and 5 not in [hit["id"] for hit in near["neighbours"]]
    assert all(hit["correct"] == (hit["label"] == near["item"]["label"]) for hit in near["neighbours"])
    browse = api.get("/browse?k=3").json()
    precisions = [q["precision"] for q in browse["queries"]]
    assert len(precisions) == 24 and precisions == sorted(precisions)  # worst first
    assert all(
        q["precision"] == pytest.approx(np.mean([h["correct"] for h in q["neighbours"]]), abs=1e-4)
        for q in browse["queries"]
    )


def test_bad_input_gets_a_4xx_json_error_and_the_server_keeps_serving(served):
    api = client(served, max_upload_bytes=20_000, max_files=2, max_k=5)
    good = png(draw(0, 1))
    big = png(Image.fromarray(np.random.default_rng(0).integers(0, 255, (120, 120, 3), dtype=np.uint8)))
    cases = [
        ({"files": {"file": ("a.txt", b"hello, not an image", "image/png")}}, 400, "not an image"),
        ({"files": {"file": ("a.png", good[: len(good) // 2], "image/png")}}, 400, "corrupt image"),
        ({"files": {"file": ("a.png", b"", "image/png")}}, 400, "empty file"),
        ({"files": {"file": ("big.png", big, "image/png")}}, 413, "over the limit of 20000 bytes"),
        ({"files": {"file": ("a.txt", good, "text/plain")}}, 415, "'text/plain' is not an image"),
        ({"json": {"image": "x"}}, 415, "multipart/form-data"),
        ({"files": [("file", ("a.png", good, "image/png"))] * 3}, 400, "bad multipart body"),
        ({"data": {"other": "x"}, "files": {"nothing": ("a.png", good, "image/png")}}, 400, "no image in the request"),
    ]
    for request, status, message in cases:
        response = api.post("/search?k=2", **request)
        assert response.status_code == status and message in response.json()["detail"], (request.keys(), response.text)
    huge = api.post("/search", content=b"x" * 200_000, headers={"content-type": "multipart/form-data; boundary=b"})
    assert huge.status_code == 413 and "request body" in huge.json()["detail"]
    for url, status, message in [
        ("/search?k=0", 422, "k must be between 1 and 5, got 0"),
        ("/search?k=6", 422, "k must be between 1 and 5, got 6"),
        ("/search?k=two", 422, "int"),
    ]:
        response = api.post(url, files={"file": ("a.png", good, "image/png")})
        assert response.status_code == status and message in str(response.json()["detail"])
    for url, status, message in [
        ("/items/999", 404, "no item with id '999'"),
        ("/items/abc/image", 404, "no item with id 'abc'"),
        ("/items/1/neighbours?k=99", 422, "k must be between 1 and 5"),
        ("/items?limit=0", 422, "limit"),
        ("/browse?limit=0", 422, "limit must be between"),
    ]:
        response = api.get(url)
        assert response.status_code == status and message in response.json()["detail"], url
    assert api.post("/search?k=2", files={"file": ("ok.png", good, "image/png")}).status_code == 200
    assert api.get("/healthz").status_code == 200


def test_an_ivf_index_serves_neighbours_and_browse(served, tmp_path):
    from ranklist.retrieval import build_index, save_index, stored_vectors

    flat = load_index(served["index"])
    ivf = build_index(
        stored_vectors(flat, np.arange(len(flat))),
        flat.items,
        kind="ivf",
        nlist=2,
        nprobe=2,
        model=flat.model,
        meta={"class_names": flat.meta["class_names"]},
    )
    save_index(ivf, tmp_path / "ivf")
    api = TestClient(
        create_app(SearchService(load_index(tmp_path / "ivf"), load_embedder(served["checkpoint"], None))),
        base_url=LOCAL,
    )
    assert api.get("/info").json()["kind"] == "ivf"
    assert [h["id"] for h in api.get("/items/4/neighbours?k=5").json()["neighbours"]] == [
        h["id"] for h in client(served).get("/items/4/neighbours?k=5").json()["neighbours"]
    ]
    assert len(api.get("/browse?k=3").json()["queries"]) == 24


def test_another_models_embedder_is_refused(served, tmp_path):
    other = make_checkpoint(tmp_path / "other.pt", seed=3)
    with pytest.raises(ValueError, match="come from another model than the index's"):
        SearchService(load_index(served["index"]), load_embedder(other, None))
    with pytest.raises(ValueError, match="exactly one of a checkpoint"):
        load_embedder(other, served["onnx"])


def test_in_memory_thumbnails_and_an_unlabelled_index(served, tmp_path):
    from ranklist.models.fingerprint import model_fingerprint
    from ranklist.retrieval import Items, build_index

    embedder = load_embedder(served["checkpoint"], None)
    thumbs = np.full((3, 64, 64, 3), 200, dtype=np.uint8)
    index = build_index(np.eye(3, 24), Items(np.arange(3), thumbnails=thumbs), model=model_fingerprint(embedder.model))
    api = TestClient(create_app(SearchService(index, embedder)), base_url=LOCAL)
    assert Image.open(io.BytesIO(api.get("/items/1/image").content)).size == (64, 64)
    response = api.get("/browse")
    assert response.status_code == 409 and "no labels" in response.json()["detail"]


class HeldEmbedder:
    """Holds each forward until the test releases it, as a slow model would: other requests must still be
    answered meanwhile. The hold has a timeout so that inference run on the event loop fails instead of hanging."""

    def __init__(self, inner):
        self.inner, self.preprocessing, self.fingerprint, self.runtime = (
            inner,
            inner.preprocessing,
            inner.fingerprint,
            "held",
        )
        self.started, self.release, self.released = threading.Event(), threading.Event(), []

    def embed(self, batch):
        self.started.set()
        self.released.append(self.release.wait(timeout=30))  # False: the hold timed out, nobody released it
        return self.inner.embed(batch)


def test_inference_runs_off_the_event_loop(served):
    import httpx

    held = HeldEmbedder(load_embedder(served["checkpoint"], None))
    app = create_app(SearchService(load_index(served["index"]), held))

    async def scenario():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=LOCAL) as api:
            search = asyncio.create_task(
                api.post("/search?k=2", files={"file": ("q.png", png(draw(2, 3)), "image/png")})
            )
            assert await asyncio.to_thread(held.started.wait, 60), "the search never reached the model"
            health = await api.get("/healthz")
            search_done = search.done()
            held.release.set()
            return health.status_code, search_done, (await search).status_code

    status, search_done, search_status = asyncio.run(scenario())
    # health was answered, and the test released the forward, while the search's forward was held: the event
    # loop was free. No clock bound: inference on the loop would block it until the hold timed out.
    assert status == 200 and not search_done and search_status == 200 and held.released == [True]


def test_a_16_bit_grayscale_upload_is_scaled_not_white(served):
    """Decoded like the datasets decode files (ranklist.data.image_decoding): mid-grey stays mid-grey."""
    from ranklist.serving.uploads import decode_image

    grey = Image.fromarray(np.full((20, 20), 32768, dtype=np.uint16))
    buffer = io.BytesIO()
    grey.save(buffer, format="PNG")
    decoded = decode_image(buffer.getvalue(), "grey.png", "image/png", ServeLimits())
    assert decoded.mode == "RGB" and np.asarray(decoded)[0, 0].tolist() == [128, 128, 128]
    assert (
        client(served).post("/search?k=2", files={"file": ("grey.png", buffer.getvalue(), "image/png")}).status_code
        == 200
    )
