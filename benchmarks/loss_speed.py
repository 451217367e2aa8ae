"""Forward+backward speed and peak memory of the Ranked List Loss; prints JSON.

For each N (D = 512, float32, CPU, 2 threads): ranklist ("query" and "full" gradients),
pytorch-metric-learning's RankedListLoss, and the floor any exact implementation pays: two
N x N x D matrix products (distances forward, gradient backward). Speeds are ratios to the floor
measured in the same run, so a loaded machine moves all of them together.

Each measurement runs in its own subprocess: time = best of the repeats after a warm-up call (which
also compiles the fused kernel); peak extra memory = the process's peak resident set size during
the timed calls (reset after the warm-up) minus its resident size before them. It includes the
allocator's slack, so it is an upper bound on what the computation itself holds.

--versus-floor ROUNDS times the floor and the methods in turn in one process per N, ROUNDS rounds,
and reports medians and the median of the per-round ratios (a load that comes and goes hits all
alike; no memory). kernel_products / kernel_products_terms are parts of the `query` step for a
breakdown: the kernel's two products over its own blocks, then with the fused element-wise pass.

    python benchmarks/loss_speed.py                  # N in 180, 1024, 4096, 16384, and 32768 (ranklist)
    python benchmarks/loss_speed.py --sizes 180 1024 --big 0
    python benchmarks/loss_speed.py --sizes 4096 --big 0 --methods ranklist_query ranklist_full
    python benchmarks/loss_speed.py --sizes 1024 --big 0 --methods ranklist_full ranklist_full_weights # weight_gradient
    python benchmarks/loss_speed.py --sizes 4096 16384 --versus-floor 7 \
        --methods kernel_products kernel_products_terms ranklist_query   # the floor, the kernel and its parts in turn
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

from proc_memory import peak_rss_bytes, reset_peak_rss, rss_bytes

DIM = 512
# pml builds ~10 N x N float32 matrices with autograd history: beyond this it needs > 20 GB here.
PML_MAX_N = 16384


def _make_step(method: str, n: int) -> Callable[[], None]:
    """One forward+backward (or the floor's two products) at N = n, D = DIM, on fixed inputs."""
    import torch

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, DIM, generator=gen)
    labels = torch.randint(0, max(n // 3, 1), (n,), generator=gen)  # ~3 per class, as C x 3

    if method == "floor":
        other = torch.randn(n, DIM, generator=gen)

        def step() -> None:
            (x @ other.T)
            (x @ other.T)

    elif method.startswith("kernel_"):
        return _kernel_part(method, x, labels)

    elif method.startswith("ranklist"):
        from ranklist import ranked_list_loss

        gradient, weight_gradient = method.split("_")[1], method.endswith("_weights")

        def step() -> None:
            emb = x.clone().requires_grad_(True)
            ranked_list_loss(emb, labels, gradient=gradient, weight_gradient=weight_gradient).backward()

    elif method == "pml":
        import warnings

        from pytorch_metric_learning.losses import RankedListLoss

        warnings.simplefilter("ignore")
        loss_fn = RankedListLoss(margin=0.4, Tn=10.0, alpha=1.2, imbalance=0.5)

        def step() -> None:
            emb = x.clone().requires_grad_(True)
            loss_fn(emb, labels).backward()

    else:
        raise ValueError(f"unknown method {method!r}")
    return step


def _kernel_part(method: str, x, labels) -> Callable[[], None]:
    """Parts of the kernel's "query" step for the breakdown, over its own blocks: "kernel_products"
    (the two products, sim = Q R^T and W R), "kernel_products_terms" (plus the fused element-wise
    pass between them, the default settings)."""
    import torch

    from ranklist.losses import ranked_list_kernel as kernel

    n = x.shape[0]
    q = torch.nn.functional.normalize(x, dim=1)
    self_index = torch.arange(n)
    block = kernel.block_rows(n, n)
    buffer, weight_buffer = q.new_empty(block, n), q.new_empty(block, n)
    terms_fn = kernel.select_block_terms(None, q.device, n * n)
    scalars = (0.8, 1.2, 0.0, 10.0, 0.5, False)  # the default preset's boundaries and temperatures
    with_terms = method == "kernel_products_terms"
    if method not in ("kernel_products", "kernel_products_terms"):
        raise ValueError(f"unknown method {method!r}")

    def step() -> None:
        for start in range(0, n, block):
            rows = slice(start, min(start + block, n))
            sim = torch.mm(q[rows], q.T, out=buffer[: rows.stop - start])
            out = weight_buffer[: rows.stop - start]
            weight = terms_fn(sim, out, labels[rows], labels, self_index[rows], *scalars)[0] if with_terms else sim
            torch.mm(weight, q)

    return step


def _measure(method: str, n: int, repeats: int, threads: int) -> dict:
    """Runs in the child process."""
    import torch

    torch.set_num_threads(threads)
    step = _make_step(method, n)
    step()  # warm-up (and torch.compile of the fused kernel, whose memory is not counted)
    reset_peak_rss()
    before = rss_bytes()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    peak = peak_rss_bytes()
    return {"seconds": min(times), "peak_extra_mb": round((peak - before) / 2**20, 1)}


def _interleaved(methods: list[str], n: int, rounds: int, threads: int) -> dict:
    """Runs in the child process: every method once per round, in turn, so that a load that comes
    and goes hits them alike; per method the median time and the median of its per-round ratios to
    that round's floor."""
    import torch

    torch.set_num_threads(threads)
    steps = {method: _make_step(method, n) for method in ["floor", *methods]}
    for step in steps.values():
        step()  # warm-up (and torch.compile)
    times: dict[str, list[float]] = {method: [] for method in steps}
    for _ in range(rounds):
        for method, step in steps.items():
            start = time.perf_counter()
            step()
            times[method].append(time.perf_counter() - start)
    row: dict = {"n": n, "dim": DIM, "rounds": rounds}
    for method, seconds in times.items():
        ratios = [t / f for t, f in zip(seconds, times["floor"])]
        row[method] = {
            "median_s": round(statistics.median(seconds), 4),
            "min_s": round(min(seconds), 4),
            "x_floor": round(statistics.median(ratios), 3),
            "x_floor_range": [round(min(ratios), 3), round(max(ratios), 3)],
        }
    return row


def run_child(method: str, n: int, repeats: int, threads: int) -> dict:
    cmd = [sys.executable, __file__, "--child", method, str(n), str(repeats), str(threads)]
    return _child(cmd)


def _child(cmd: list[str]) -> dict:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
    return json.loads(done.stdout)


METHODS = ["ranklist_query", "ranklist_full", "ranklist_query_weights", "ranklist_full_weights", "pml"]
PARTS = ["kernel_products", "kernel_products_terms"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[180, 1024, 4096, 16384])
    parser.add_argument("--big", type=int, default=32768, help="one ranklist-only run at this N (0: none)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--methods",
        nargs="+",
        default=["ranklist_query", "ranklist_full", "pml"],
        choices=METHODS + PARTS,
        help="besides the floor (_weights: weight_gradient=True; "
        "kernel_*: parts of the query step, with --versus-floor)",
    )
    parser.add_argument(
        "--versus-floor",
        type=int,
        metavar="ROUNDS",
        help="time the floor and the methods in turn, ROUNDS rounds in one process per N; medians (no memory)",
    )
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--interleaved", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        method, n, repeats, threads = args.child
        print(json.dumps(_measure(method, int(n), int(repeats), int(threads))))
    elif args.interleaved:
        n, rounds, threads, *methods = args.interleaved
        print(json.dumps(_interleaved(methods, int(n), int(rounds), int(threads))))
    elif args.versus_floor:
        _versus_floor(args)
    else:
        _separate(args)


def _header(args: argparse.Namespace) -> dict:
    import torch

    return {
        "benchmark": "loss_speed",
        "threads": args.threads,
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "load_before": os.getloadavg(),
    }


def _versus_floor(args: argparse.Namespace) -> None:
    header = _header(args)
    results = []
    for n in args.sizes:
        cmd = [
            sys.executable,
            __file__,
            "--interleaved",
            str(n),
            str(args.versus_floor),
            str(args.threads),
            *args.methods,
        ]
        results.append(_child(cmd))
        print(json.dumps(results[-1]), file=sys.stderr)
    print(json.dumps({**header, "mode": "versus_floor", "load_after": os.getloadavg(), "results": results}, indent=2))


def _separate(args: argparse.Namespace) -> None:
    results = []
    for n in args.sizes:
        repeats = 5 if n <= 4096 else 2
        row: dict = {"n": n, "dim": DIM}
        for method in ["floor", *args.methods]:
            if method == "pml" and n > PML_MAX_N:
                row[method] = {"skipped": f"N > {PML_MAX_N}: needs > 20 GB"}
                continue
            row[method] = run_child(method, n, repeats, args.threads)
        floor = row["floor"]["seconds"]
        for method in args.methods:
            if "seconds" in row[method]:
                row[method]["x_floor"] = round(row[method]["seconds"] / floor, 3)
        for method in ["ranklist_query", "ranklist_full"]:
            if method in row and "pml" in row and "seconds" in row[method] and "seconds" in row["pml"]:
                row[method]["speedup_vs_pml"] = round(row["pml"]["seconds"] / row[method]["seconds"], 2)
        results.append(row)
        print(json.dumps(row), file=sys.stderr)
    big = None
    if args.big:
        big = {
            "n": args.big,
            "dim": DIM,
            "floor": run_child("floor", args.big, 1, args.threads),
            "ranklist_query": run_child("ranklist_query", args.big, 1, args.threads),
        }
        if "seconds" in big["floor"] and "seconds" in big["ranklist_query"]:
            big["ranklist_query"]["x_floor"] = round(big["ranklist_query"]["seconds"] / big["floor"]["seconds"], 3)
    print(json.dumps({**_header(args), "results": results, "big": big}, indent=2))


if __name__ == "__main__":
    main()
