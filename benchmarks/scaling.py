"""Numbers behind docs/scaling.md; prints JSON.

1. The per-process cost of one global ranked list: ranked_list_loss forward+backward ("query"
   gradient) of N_local queries against N_global gathered references (D = 512, 2 threads), for
   P = 1, 2, 4, 8 processes of 180 queries each (the paper's batch per process).
2. The communication: gloo all_gather of a [N_local, 512] float32 block between 2 processes on
   loopback (the labels' gather is negligible beside it).
3. Serving: ranklist.retrieval flat / IVF / IVF-PQ indexes of 200,000 clustered 128-d vectors
   (build time, search time per query, recall@10 against the exact flat search, bytes per vector).

    python benchmarks/scaling.py
"""

from __future__ import annotations

import json
import socket
import time

import torch
import torch.multiprocessing as mp

DIM = 512


def loss_times(local: int = 180, worlds=(1, 2, 4, 8), repeats: int = 5) -> list[dict]:
    from ranklist import ranked_list_loss

    torch.set_num_threads(2)
    rows = []
    for world in worlds:
        n_global = local * world
        refs = torch.randn(n_global, DIM)
        ref_labels = torch.arange(n_global) // 3
        x = refs[:local].clone()
        labels = ref_labels[:local]
        times = []
        for _ in range(repeats + 1):
            emb = x.clone().requires_grad_(True)
            start = time.perf_counter()
            ranked_list_loss(
                emb, labels, ref_emb=refs, ref_labels=ref_labels, self_index=torch.arange(local)
            ).backward()
            times.append(time.perf_counter() - start)
        rows.append(
            {
                "processes": world,
                "local_queries": local,
                "global_refs": n_global,
                "loss_fwd_bwd_ms": round(1000 * min(times[1:]), 2),
                "extra_memory_mb_bound": round(4 * local * n_global * 6 / 2**20, 1),
            }
        )
    return rows


def _gather_worker(rank: int, port: int, sizes: list[int], queue) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    out = []
    for n in sizes:
        block = torch.randn(n, DIM)
        parts = [torch.empty_like(block) for _ in range(2)]
        times = []
        for _ in range(6):
            dist.barrier()
            start = time.perf_counter()
            dist.all_gather(parts, block)
            times.append(time.perf_counter() - start)
        out.append(
            {
                "local_rows": n,
                "megabytes_per_process": round(n * DIM * 4 / 2**20, 2),
                "all_gather_ms": round(1000 * min(times[1:]), 3),
            }
        )
    if rank == 0:
        queue.put(out)
    dist.destroy_process_group()


def gather_times(sizes=(180, 1024, 4096)) -> list[dict]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    queue = mp.get_context("spawn").SimpleQueue()
    mp.start_processes(_gather_worker, args=(port, list(sizes), queue), nprocs=2, start_method="spawn", join=True)
    return queue.get()


def index_times(n: int = 200_000, dim: int = 128, queries: int = 1000, k: int = 10) -> list[dict]:
    """ranklist.retrieval on clustered synthetic vectors: build, search, recall@k against flat."""
    import faiss
    import numpy as np

    from ranklist.retrieval import build_index, search

    faiss.omp_set_num_threads(2)
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(n // 5, dim)).astype(np.float32)
    x = centres[rng.integers(0, len(centres), n)] + 0.5 * rng.normal(size=(n, dim)).astype(np.float32)
    q = x[rng.choice(n, queries, replace=False)] + 0.1 * rng.normal(size=(queries, dim)).astype(np.float32)
    rows, truth = [], None
    for kind in ("flat", "ivf", "ivfpq"):
        start = time.perf_counter()
        index = build_index(x, kind=kind, nprobe=16, m=16)
        built = time.perf_counter() - start
        start = time.perf_counter()
        _, ids = search(index, q, k)
        searched = time.perf_counter() - start
        truth = ids if truth is None else truth
        recall = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(ids, truth)]))
        code_bytes = {"flat": 4 * dim, "ivf": 4 * dim, "ivfpq": 16}[kind]
        rows.append(
            {
                "kind": kind,
                "items": n,
                "dim": dim,
                "build_s": round(built, 2),
                "search_ms_per_query": round(1000 * searched / queries, 3),
                f"recall@{k}_vs_flat": round(recall, 3),
                "bytes_per_vector": code_bytes,
            }
        )
    return rows


if __name__ == "__main__":
    print(
        json.dumps(
            {
                "benchmark": "scaling",
                "loss_per_process": loss_times(),
                "gloo_all_gather_2_processes": gather_times(),
                "index": index_times(),
            },
            indent=2,
        )
    )
