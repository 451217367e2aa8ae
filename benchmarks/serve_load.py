"""A bounded load test of `ranklist serve` on loopback; prints JSON.

The demo model (EfficientNet-Lite0, RLL-(L,M,H), 96 px; random weights unless --checkpoint: speed
does not depend on them), through PyTorch and through its ONNX export, serves an index of N items
(random unit vectors recorded as the model's, flat and IVF), each pair in its own server process
(`python -m ranklist serve`). For each number of concurrent clients C, the clients post one image
each to /search for T seconds; reported: requests/s, p50/p99 latency, errors. `--max-batches 1 32`
serves each pair twice, with requests sharing forwards off (1 image per forward) and on, so the
gain of sharing is a same-run ratio.

    python benchmarks/serve_load.py                      # C = 1 4 8 16, T = 10 s, N = 20,000
    python benchmarks/serve_load.py --clients 8 --seconds 30 --items 100000 --kinds flat ivf ivfpq
    python benchmarks/serve_load.py --kinds flat --items 5000 --max-batches 1 32
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def prepare(folder: Path, checkpoint: str | None, items: int, kinds: list[str]) -> Path:
    """The checkpoint (saved here unless given) and one index per kind under `folder`."""
    from onnx_speed import demo_model

    from ranklist.models import save_model
    from ranklist.models.fingerprint import model_fingerprint
    from ranklist.retrieval import build_index, save_index

    model = demo_model(checkpoint)
    path = Path(checkpoint) if checkpoint else folder / "demo.pt"
    if not checkpoint:
        save_model(model, path)
    dim = sum(model.embedding_dims.values())
    vectors = np.random.default_rng(0).normal(size=(items, dim)).astype(np.float32)
    for kind in kinds:
        save_index(build_index(vectors, kind=kind, model=model_fingerprint(model)), folder / kind)
    from ranklist.export import export_onnx

    export_onnx(model, folder / "demo.onnx")
    return path


def query_png() -> bytes:
    from PIL import Image

    image = Image.fromarray(np.random.default_rng(1).integers(0, 255, (120, 160, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


async def load(url: str, clients: int, seconds: float, k: int) -> dict:
    import httpx

    body, latencies, errors = query_png(), [], 0
    deadline = time.perf_counter() + seconds

    async def client(api: httpx.AsyncClient) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            response = await api.post(f"/search?k={k}", files={"file": ("q.png", body, "image/png")})
            latencies.append(time.perf_counter() - start)
            errors += response.status_code != 200

    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=120) as api:
        await asyncio.gather(*(client(api) for _ in range(clients)))
    wall = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    return {
        "requests": len(latencies),
        "errors": errors,
        "requests_per_s": round(len(latencies) / wall, 2),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
    }


def serve(index: Path, model: list[str], args: argparse.Namespace, max_batch: int) -> dict:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ranklist",
            "serve",
            "--index",
            str(index),
            *model,
            "--port",
            str(port),
            "--max-batch",
            str(max_batch),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(url + "/healthz", timeout=2).close()
                break
            except OSError:
                if process.poll() is not None:
                    raise RuntimeError(f"the server for {index} exited with {process.returncode}") from None
                time.sleep(0.2)
        asyncio.run(load(url, 1, 1.0, args.k))  # warm-up
        return {str(clients): asyncio.run(load(url, clients, args.seconds, args.k)) for clients in args.clients}
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument(
        "--max-batches", type=int, nargs="+", default=[32], help="the server's --max-batch (1: no sharing)"
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--kinds", nargs="+", default=["flat", "ivf"])
    parser.add_argument("--runtimes", nargs="+", default=["pytorch", "onnxruntime"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = prepare(Path(tmp), args.checkpoint, args.items, args.kinds)
        models = {"pytorch": ["--checkpoint", str(checkpoint)], "onnxruntime": ["--onnx", str(Path(tmp) / "demo.onnx")]}
        results = {
            f"{kind}/{runtime}/max_batch_{size}": serve(Path(tmp) / kind, models[runtime], args, size)
            for runtime in args.runtimes
            for kind in args.kinds
            for size in args.max_batches
        }
    print(
        json.dumps(
            {
                "clients": args.clients,
                "seconds": args.seconds,
                "items": args.items,
                "k": args.k,
                "model": "demo (efficientnet_lite0, 3 x 128-d, 96 px)" if not args.checkpoint else args.checkpoint,
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
