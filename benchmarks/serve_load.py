"""A bounded load test of `ranklist serve` on loopback; prints JSON.

The demo model (EfficientNet-Lite0, RLL-(L,M,H), 96 px; random weights unless --checkpoint: speed
does not depend on them), through PyTorch and through its ONNX export, serves an index of N items
(random unit vectors recorded as the model's, flat and IVF), each pair in its own server process
(`python -m ranklist serve`), all started at once. For each number of concurrent clients C, the
clients post one image each to /search for T seconds; reported: requests/s, p50/p99 latency, errors,
as medians over `--rounds` in which the servers take turns. `--max-batches 1 32` serves each pair
twice, with requests sharing forwards off (1 image per forward) and on, so the gain of sharing is a
same-run ratio; "targets" holds issue 27's two figures (8 clients' requests/s over 1 client's; a lone
request's p50 with sharing over without), and "sharing_overhead" what sharing adds to a lone call
apart from the model and the network (a model that does nothing, called directly and shared).

    python benchmarks/serve_load.py                      # C = 1 4 8 16, T = 10 s, N = 20,000
    python benchmarks/serve_load.py --clients 8 --seconds 30 --items 100000 --kinds flat ivf ivfpq
    python benchmarks/serve_load.py --kinds flat --items 5000 --max-batches 1 32 --rounds 5 --seconds 4
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


class Server:
    """`python -m ranklist serve` on a free loopback port, in its own process, until stopped."""

    def __init__(self, index: Path, model: list[str], max_batch: int) -> None:
        port = free_port()
        command = [sys.executable, "-m", "ranklist", "serve", "--index", str(index), *model]
        self.process = subprocess.Popen(
            [*command, "--port", str(port), "--max-batch", str(max_batch)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url, self.name = f"http://127.0.0.1:{port}", f"{index.name} {' '.join(model)}"

    def wait_ready(self) -> None:
        for _ in range(600):
            try:
                urllib.request.urlopen(self.url + "/healthz", timeout=2).close()
                return
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError(f"the server for {self.name} exited with {self.process.returncode}") from None
                time.sleep(0.2)
        raise RuntimeError(f"the server for {self.name} did not answer /healthz in 120 s")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def median_row(rounds: list[dict]) -> dict:
    """Each figure's median over the rounds, and the rounds themselves."""
    keys = ("requests_per_s", "p50_ms", "p99_ms")
    row = {key: round(float(np.median([r[key] for r in rounds])), 2) for key in keys}
    return {**row, "errors": sum(r["errors"] for r in rounds), "rounds": rounds}


def targets(results: dict[str, dict[str, dict]]) -> dict[str, dict]:
    """Issue 27's two figures per server pair: 8 clients' requests/s over 1 client's (shared forwards),
    and a lone request's p50 with sharing over without it."""
    out = {}
    for name, rows in results.items():
        pair, _, size = name.rpartition("/max_batch_")
        unshared = results.get(f"{pair}/max_batch_1")
        figures = {}
        if "1" in rows and "8" in rows:
            figures["requests_per_s_8_over_1_client"] = round(
                rows["8"]["requests_per_s"] / rows["1"]["requests_per_s"], 3
            )
        if size != "1" and unshared and "1" in rows:
            figures["lone_p50_over_unshared"] = round(rows["1"]["p50_ms"] / unshared["1"]["p50_ms"], 3)
        out[name] = figures
    return out


def sharing_overhead_us(calls: int = 20_000) -> dict:
    """What sharing adds to a lone call, apart from the model: a CoalescingEmbedder around an embedder
    that does nothing, against that embedder called directly (microseconds a call, medians of 5)."""
    import torch

    from ranklist.serving.coalescing import CoalescingEmbedder

    class Idle:
        preprocessing = fingerprint = None
        runtime, precision = "none", "fp32"
        out = np.zeros((1, 4), np.float32)

        def embed(self, batch: torch.Tensor) -> np.ndarray:
            return self.out

    batch, idle = torch.zeros(1, 3, 8, 8), Idle()
    shared = CoalescingEmbedder(idle, 32)

    def per_call(embedder) -> float:
        start = time.perf_counter()
        for _ in range(calls):
            embedder.embed(batch)
        return (time.perf_counter() - start) / calls * 1e6

    direct, coalesced = zip(*((per_call(idle), per_call(shared)) for _ in range(5)))
    return {"direct_us": round(float(np.median(direct)), 2), "shared_us": round(float(np.median(coalesced)), 2)}


def measure(servers: dict[str, Server], args: argparse.Namespace) -> dict[str, dict[str, dict]]:
    """Every server under each load, in rounds; within a round the servers take turns (their order
    reversed every other round), so a slow minute of the machine hits them alike."""
    for server in servers.values():
        server.wait_ready()
        asyncio.run(load(server.url, max(args.clients), 2.0, args.k))  # warm-up: every batch size it will see
    raw: dict[str, dict[str, list]] = {name: {str(c): [] for c in args.clients} for name in servers}
    names = list(servers)
    for round_ in range(args.rounds):
        for clients in args.clients:
            for name in names if round_ % 2 == 0 else names[::-1]:
                raw[name][str(clients)].append(asyncio.run(load(servers[name].url, clients, args.seconds, args.k)))
    return {name: {c: median_row(rounds) for c, rounds in rows.items()} for name, rows in raw.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument(
        "--max-batches", type=int, nargs="+", default=[32], help="the server's --max-batch (1: no sharing)"
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="each measurement's length")
    parser.add_argument("--rounds", type=int, default=1, help="measurements per server and load (medians reported)")
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--kinds", nargs="+", default=["flat", "ivf"])
    parser.add_argument("--runtimes", nargs="+", default=["pytorch", "onnxruntime"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = prepare(Path(tmp), args.checkpoint, args.items, args.kinds)
        models = {"pytorch": ["--checkpoint", str(checkpoint)], "onnxruntime": ["--onnx", str(Path(tmp) / "demo.onnx")]}
        servers = {
            f"{kind}/{runtime}/max_batch_{size}": Server(Path(tmp) / kind, models[runtime], size)
            for runtime in args.runtimes
            for kind in args.kinds
            for size in args.max_batches
        }
        try:
            results = measure(servers, args)
        finally:
            for server in servers.values():
                server.stop()
    settings = {key: getattr(args, key) for key in ("clients", "seconds", "rounds", "items", "k")}
    model = "demo (efficientnet_lite0, 3 x 128-d, 96 px)" if not args.checkpoint else args.checkpoint
    figures = {"targets": targets(results), "sharing_overhead": sharing_overhead_us()}
    print(json.dumps({**settings, "model": model, **figures, "results": results}, indent=2))


if __name__ == "__main__":
    main()
