"""Forward+backward speed and peak memory of the Ranked List Loss; prints JSON.

For each N (D = 512, float32, CPU, 2 threads): ranklist ("query" and "full" gradients),
pytorch-metric-learning's RankedListLoss, and the floor any exact implementation pays: two
N x N x D matrix products (distances forward, gradient backward). Speeds are ratios to the floor
measured in the same run, so a loaded machine moves all of them together.

Each measurement runs in its own subprocess: time = best of the repeats after a warm-up call (which
also compiles the fused kernel); peak extra memory = the process's peak resident set size during
the timed calls (reset after the warm-up) minus its resident size before them. It includes the
allocator's slack, so it is an upper bound on what the computation itself holds.

    python benchmarks/loss_speed.py                  # N in 180, 1024, 4096, 16384, and 32768 (ranklist)
    python benchmarks/loss_speed.py --sizes 180 1024 --big 0
    python benchmarks/loss_speed.py --sizes 4096 --big 0 --methods ranklist_query ranklist_full
    python benchmarks/loss_speed.py --sizes 1024 --big 0 --methods ranklist_full ranklist_full_weights  # weight_gradient
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time

from proc_memory import peak_rss_bytes, reset_peak_rss, rss_bytes

DIM = 512
# pml builds ~10 N x N float32 matrices with autograd history: beyond this it needs > 20 GB here.
PML_MAX_N = 16384


def _measure(method: str, n: int, repeats: int, threads: int) -> dict:
    """Runs in the child process."""
    import torch

    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, DIM, generator=gen)
    labels = torch.randint(0, max(n // 3, 1), (n,), generator=gen)  # ~3 per class, as C x 3

    if method == "floor":
        other = torch.randn(n, DIM, generator=gen)

        def step() -> None:
            (x @ other.T)
            (x @ other.T)

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


def run_child(method: str, n: int, repeats: int, threads: int) -> dict:
    cmd = [sys.executable, __file__, "--child", method, str(n), str(repeats), str(threads)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[180, 1024, 4096, 16384])
    parser.add_argument("--big", type=int, default=32768, help="one ranklist-only run at this N (0: none)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--methods", nargs="+", default=["ranklist_query", "ranklist_full", "pml"],
                        choices=["ranklist_query", "ranklist_full", "ranklist_query_weights", "ranklist_full_weights", "pml"],
                        help="besides the floor (_weights: weight_gradient=True)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        method, n, repeats, threads = args.child
        print(json.dumps(_measure(method, int(n), int(repeats), int(threads))))
        return

    import torch

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
        big = {"n": args.big, "dim": DIM, "floor": run_child("floor", args.big, 1, args.threads),
               "ranklist_query": run_child("ranklist_query", args.big, 1, args.threads)}
        if "seconds" in big["floor"] and "seconds" in big["ranklist_query"]:
            big["ranklist_query"]["x_floor"] = round(
                big["ranklist_query"]["seconds"] / big["floor"]["seconds"], 3
            )
    print(json.dumps({
        "benchmark": "loss_speed", "threads": args.threads, "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(), "results": results, "big": big,
    }, indent=2))


if __name__ == "__main__":
    main()
