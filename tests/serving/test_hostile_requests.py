"""What a hostile page or request could do to the server: script from data, another origin reading it,
memory from a few hundred kilobytes."""

import io
import json
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from ranklist.data.preprocessing import Preprocessing
from ranklist.retrieval import load_index
from ranklist.serving.embedders import load_embedder
from ranklist.serving.service import SearchService
from ranklist.serving.uploads import InputError, ServeLimits, Upload, _open, decode_batch

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from ranklist.serving.app import allowed_hosts, create_app  # noqa: E402

LOCAL = "http://127.0.0.1"


def solid_png(side: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), (120, 30, 200)).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def test_the_page_inserts_data_as_text_and_carries_a_script_policy(served):
    api = TestClient(
        create_app(SearchService(load_index(served["index"]), load_embedder(served["checkpoint"], None))),
        base_url=LOCAL,
    )
    page = api.get("/")
    assert "innerHTML" not in page.text and "insertAdjacentHTML" not in page.text
    policy = page.headers["content-security-policy"]
    assert (
        "default-src 'none'" in policy and "'unsafe-inline'" not in policy.split(";")[1]
    )  # script-src: the page's own script only
    import base64
    import hashlib

    script = re.search(r"<script>(.*?)</script>", page.text, flags=re.S).group(1)
    assert f"'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'" in policy


def test_another_host_name_is_refused_and_paths_are_relative(served):
    service = SearchService(load_index(served["index"]), load_embedder(served["checkpoint"], None))
    app = create_app(service)
    assert TestClient(app, base_url="http://evil.example").get("/items").status_code == 400  # a DNS-rebinding page
    paths = [item["path"] for item in TestClient(app, base_url=LOCAL).get("/items").json()["items"]]
    assert paths and all(not p.startswith("/") and p.startswith("class_") for p in paths)
    exposed = SearchService(load_index(served["index"]), load_embedder(served["checkpoint"], None), expose_paths=True)
    assert (
        TestClient(create_app(exposed), base_url=LOCAL)
        .get("/items")
        .json()["items"][0]["path"]
        .startswith(str(served["root"]))
    )
    assert TestClient(create_app(service, ["*"]), base_url="http://any.example").get("/healthz").status_code == 200
    assert {"0.0.0.0", "127.0.0.1", "localhost"} <= set(allowed_hosts("0.0.0.0")) and "lab.example" in allowed_hosts(
        "127.0.0.1", ["lab.example"]
    )


def test_the_request_pixel_budget_is_checked_from_headers_before_decoding(monkeypatch):
    def no_decoding(self):
        raise AssertionError("decoded before the budget was checked")

    from PIL import ImageFile

    uploads = [Upload(solid_png(3000), f"big{i}.png", "image/png") for i in range(3)]
    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(
        InputError, match="3 images decode to 27000000 pixels, over the per-request limit of 20000000"
    ) as refused:
        decode_batch(uploads, ServeLimits(max_request_pixels=20_000_000), Preprocessing.create(64, "none"))
    assert refused.value.status == 413


def test_a_huge_jpeg_decodes_at_reduced_scale():
    buffer = io.BytesIO()
    Image.new("RGB", (4000, 3000), (10, 200, 90)).save(buffer, format="JPEG")
    record = Preprocessing.create(64, "none")  # resize 72: a JPEG keeps >= 4 x 72 px on its shorter side
    opened = _open(Upload(buffer.getvalue(), "big.jpg", "image/jpeg"), ServeLimits(), record.resize)
    assert opened.size == (500, 375)
    batch = decode_batch([Upload(buffer.getvalue(), "big.jpg", "image/jpeg")], ServeLimits(), record)
    assert batch.shape == (1, 3, 64, 64) and torch_close(batch[0, :, 0, 0], [10 / 255, 200 / 255, 90 / 255], 0.02)


def torch_close(values, expected, tolerance) -> bool:
    return bool(np.abs(values.numpy() - np.array(expected)).max() <= tolerance)


PEAK_PROBE = textwrap.dedent("""
    import json, resource, sys
    from ranklist.data.preprocessing import Preprocessing
    from ranklist.serving.uploads import ServeLimits, Upload, decode_batch

    data = open(sys.argv[1], "rb").read()
    statm = lambda: int(open("/proc/self/statm").read().split()[1]) * 4096
    before, peak_before = statm(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    batch = decode_batch([Upload(data, f"f{i}.png", "image/png") for i in range(8)],
                         ServeLimits(max_request_pixels=10**9), Preprocessing.create(64, "efficientnet_lite"))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"growth": peak - max(before, peak_before), "kept": statm() - before, "shape": list(batch.shape)}))
""")


@pytest.mark.heavy
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc for the resident memory")
def test_eight_huge_images_in_one_request_hold_about_one_image_at_a_time(tmp_path):
    """8 PNGs of 25 megapixels (75 MB each decoded, 0.3 MB sent): all decoded at once plus their float
    copies was over 2.5 GB; one at a time, shrunk before the transform, the peak stays near one image."""
    side = 5000
    (tmp_path / "big.png").write_bytes(solid_png(side))
    found = subprocess.run(
        [sys.executable, "-c", PEAK_PROBE, str(tmp_path / "big.png")],
        capture_output=True,
        text=True,
        timeout=300,
        env={"OMP_NUM_THREADS": "1", "PATH": ""},
        check=True,
    )
    result = json.loads(found.stdout.strip().splitlines()[-1])
    one_image = side * side * 3
    assert result["shape"] == [8, 3, 64, 64]
    assert result["growth"] < 2 * one_image, result  # measured 1.2 images; all 8 at once (before): 20 images
    assert result["kept"] < one_image, result  # handed back after the request
