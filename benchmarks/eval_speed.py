"""Evaluation speed and peak memory on an SOP-sized problem; prints JSON.

Synthetic clustered data shaped like Stanford Online Products' test split: 60,502 embeddings of
dimension 512 in 11,316 classes (~5 per class). Measured, each in its own subprocess, 2 threads:
- ranklist.retrieval_metrics: Recall@{1,10,100,1000} + MAP@R + R-Precision, its first call in a
  process, and (retrieval_metrics_warm, not run by default) a second call,
- ranklist.nmi (faiss k-means from greedy k-means++ seeds, k = 11,316),
- pytorch-metric-learning's AccuracyCalculator on the same data (precision_at_1, MAP@R,
  R-Precision; its k-NN is faiss, k = max class size),
- the floor: one exact all-pairs matrix product (60,502 x 60,502 x 512, blocked, into one buffer).
Peak memory = the subprocess's peak resident set size minus its size once the data exists.

    python benchmarks/eval_speed.py                 # the SOP-sized run
    python benchmarks/eval_speed.py --n 10000 --classes 2000
    python benchmarks/eval_speed.py --n 20000 --classes 3740 --methods floor retrieval_metrics retrieval_metrics_warm
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from proc_memory import peak_rss_bytes, reset_peak_rss, rss_bytes


def _data(n: int, classes: int, dim: int):
    import torch

    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % classes  # ~n / classes per class, like SOP
    centres = torch.randn(classes, dim, generator=gen)
    emb = centres[labels] + 2.0 * torch.randn(n, dim, generator=gen)
    return torch.nn.functional.normalize(emb, dim=1), labels


def _measure(method: str, n: int, classes: int, dim: int, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    emb, labels = _data(n, classes, dim)
    if method == "floor" or method.startswith("retrieval_metrics"):
        import ranklist.evaluation  # noqa: F401  (importing the package is not part of the call)
    reset_peak_rss()
    before = rss_bytes()
    start = time.perf_counter()
    out: dict = {}
    if method == "floor":  # the blocks retrieval_metrics computes, and nothing else
        from ranklist.evaluation.retrieval import similarity_blocks

        for _ in similarity_blocks(emb, emb):
            pass
    elif method == "retrieval_metrics":  # the first call in a process (any compiling included)
        from ranklist.evaluation import retrieval_metrics

        out = retrieval_metrics(emb, labels, ks=(1, 10, 100, 1000))
    elif method == "retrieval_metrics_warm":  # a second call: the first one's compiling reused
        from ranklist.evaluation import retrieval_metrics

        retrieval_metrics(emb, labels, ks=(1, 10, 100, 1000))
        start = time.perf_counter()
        out = retrieval_metrics(emb, labels, ks=(1, 10, 100, 1000))
    elif method == "nmi":
        from ranklist.evaluation import nmi

        out = {"nmi": nmi(emb, labels)}
    elif method == "pml":
        from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

        calc = AccuracyCalculator(include=("precision_at_1", "mean_average_precision_at_r", "r_precision"))
        out = calc.get_accuracy(emb, labels, emb, labels, ref_includes_query=True)
    else:
        raise ValueError(f"unknown method {method!r}")
    seconds = time.perf_counter() - start
    return {
        "seconds": round(seconds, 2),
        "peak_extra_mb": round((peak_rss_bytes() - before) / 2**20),
        "values": {k: round(float(v), 4) for k, v in out.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--n", type=int, default=60502)
    parser.add_argument("--classes", type=int, default=11316)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--methods", nargs="+", default=["floor", "retrieval_metrics", "nmi", "pml"])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_measure(args.child, args.n, args.classes, args.dim, args.threads)))
        return
    results = {}
    for method in args.methods:
        cmd = [
            sys.executable,
            __file__,
            "--child",
            method,
            "--n",
            str(args.n),
            "--classes",
            str(args.classes),
            "--dim",
            str(args.dim),
            "--threads",
            str(args.threads),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            results[method] = {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
        else:
            results[method] = json.loads(done.stdout)
        print(method, json.dumps(results[method]), file=sys.stderr)
    floor = results.get("floor", {}).get("seconds")
    for method in ("retrieval_metrics", "retrieval_metrics_warm", "pml"):
        if floor and "seconds" in results.get(method, {}):
            results[method]["x_floor"] = round(results[method]["seconds"] / floor, 2)
    print(
        json.dumps(
            {
                "benchmark": "eval_speed",
                "n": args.n,
                "classes": args.classes,
                "dim": args.dim,
                "threads": args.threads,
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
