"""GPU readiness check (`make gpu-check`): ranklist's hot paths on CUDA against their floors; prints JSON.

On a GPU (about 5 minutes on one card):
- the Ranked List Loss forward + backward against the two-product floor (two N x N x 512 matrix
  products: distances forward, gradient backward) at N = 4,096 / 16,384 / 65,536, "query" and
  "full" gradients, float32 and bfloat16 inputs;
- torch.compile of the loss kernel on CUDA (compile time, then its speed against eager);
- 100 iterations of the demo recipe (its model, batch, loss, optimiser) with AMP (float16 autocast)
  on synthetic batches: images/s and that the loss stays finite;
- retrieval_metrics at Stanford Online Products' size (60,502 x 512) against its one-product floor;
- with more than one GPU, a torchrun step of the demo recipe with NCCL (the distributed RLL).
Without a GPU it runs a CPU fallback of every section at tiny sizes in seconds, so that it cannot
rot; the JSON says which ("fallback": true).

    python benchmarks/gpu_check.py                # CUDA if present, else the CPU fallback
    python benchmarks/gpu_check.py --device cpu   # the fallback, forced
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_step import _make_variant, _train_step  # noqa: E402  (the benchmark's step, reused)

from ranklist import ranked_list_loss  # noqa: E402
from ranklist.evaluation import retrieval_metrics  # noqa: E402
from ranklist.evaluation.retrieval import similarity_blocks  # noqa: E402
from ranklist.training.config import load_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DIM = 512
SIZES = {"gpu": dict(loss_n=[4096, 16384, 65536], compile_n=16384, iterations=100, eval_n=60502, eval_classes=11316,
                     backbone="efficientnet_lite0", overrides=[]),
         "cpu": dict(loss_n=[64, 256], compile_n=0, iterations=2, eval_n=600, eval_classes=120, backbone="small_cnn",
                     overrides=["data.image_size=32", "data.classes_per_batch=4", "data.samples_per_class=2"])}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _best_time(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Best of `repeats` timed calls after one untimed warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return min(times)


def _loss_inputs(n: int, dtype: torch.dtype, device: torch.device):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, DIM, generator=gen).to(device=device, dtype=dtype)
    labels = torch.randint(0, max(n // 3, 1), (n,), generator=gen).to(device)  # ~3 per class, as C x 3
    return x, labels


def check_loss(sizes: list[int], device: torch.device, repeats: int) -> list[dict]:
    """Loss forward + backward against two N x N x D products in the same dtype."""
    rows = []
    for n in sizes:
        for dtype in (torch.float32, torch.bfloat16):
            x, labels = _loss_inputs(n, dtype, device)
            other = torch.randn_like(x)
            floor = _best_time(lambda: (x @ other.T, x @ other.T), device, repeats)
            row = {"n": n, "dtype": str(dtype).removeprefix("torch."), "floor_s": round(floor, 4)}
            for gradient in ("query", "full"):
                def step() -> None:
                    emb = x.clone().requires_grad_(True)
                    ranked_list_loss(emb, labels, gradient=gradient, compile=False).backward()

                seconds = _best_time(step, device, repeats)
                row[gradient] = {"seconds": round(seconds, 4), "x_floor": round(seconds / floor, 2)}
            rows.append(row)
            print("loss", json.dumps(row), file=sys.stderr)
    return rows


def check_compile(n: int, device: torch.device, repeats: int) -> dict:
    """The fused (torch.compile) loss kernel: its first call (compiling) and its speed against eager."""
    if not n:
        return {"skipped": "CPU fallback (compiling takes tens of seconds; the CPU path is tested elsewhere)"}
    x, labels = _loss_inputs(n, torch.float32, device)

    def step(compile: bool) -> Callable[[], None]:
        def run() -> None:
            emb = x.clone().requires_grad_(True)
            ranked_list_loss(emb, labels, compile=compile).backward()
        return run

    _sync(device)
    start = time.perf_counter()
    step(True)()
    _sync(device)
    first = time.perf_counter() - start
    compiled, eager = _best_time(step(True), device, repeats), _best_time(step(False), device, repeats)
    with torch.no_grad():
        same = float((ranked_list_loss(x, labels, compile=True) - ranked_list_loss(x, labels, compile=False)).abs())
    return {"n": n, "first_call_s": round(first, 2), "compiled_s": round(compiled, 4), "eager_s": round(eager, 4),
            "x_eager": round(compiled / eager, 3), "abs_loss_difference": same}


def check_demo(iterations: int, backbone: str, overrides: list[str], device: torch.device) -> dict:
    """The demo recipe's training step with AMP (float16 on CUDA, bfloat16 on CPU) on synthetic batches."""
    config = load_config(ROOT / "configs" / "demo.yaml", [f"model.backbone={backbone}", *overrides])
    from ranklist.models import build_model

    torch.manual_seed(0)
    base = build_model(backbone, embedding_dim=config.model.embedding_dim, levels=config.model.levels,
                       pretrained=False, image_size=config.data.image_size)
    variant = _make_variant("amp", config, base, device, num_classes=config.data.classes_per_batch * 4, amp=True)
    c, k, size = config.data.classes_per_batch, config.data.samples_per_class, config.data.image_size
    images = torch.randn(c * k, 3, size, size, generator=torch.Generator().manual_seed(0)).to(device)
    labels = torch.arange(c).repeat_interleave(k).to(device)
    _train_step(variant, images, labels, device)  # warm-up (cuDNN autotuning), not counted
    losses = []
    _sync(device)
    start = time.perf_counter()
    for _ in range(iterations):
        parts = _train_step(variant, images, labels, device)
        losses.append(parts)
    _sync(device)
    seconds = time.perf_counter() - start
    return {"backbone": backbone, "batch": c * k, "image_size": size, "iterations": iterations,
            "seconds": round(seconds, 2), "images_per_s": round(c * k * iterations / seconds, 1),
            "step_split_s": {key: round(sum(p[key] for p in losses) / iterations, 4) for key in losses[0]},
            "parameters_finite": all(bool(torch.isfinite(p).all()) for p in variant.model.parameters())}


def check_eval(n: int, classes: int, device: torch.device) -> dict:
    """retrieval_metrics (first call in the process) against one blocked all-pairs product."""
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % classes
    emb = torch.nn.functional.normalize(torch.randn(classes, DIM, generator=gen)[labels] + 2.0 * torch.randn(n, DIM, generator=gen), dim=1)
    emb, labels = emb.to(device), labels.to(device)

    def floor() -> None:  # the blocks retrieval_metrics computes, and nothing else
        for _ in similarity_blocks(emb, emb):
            pass

    floor()  # warm-up (kernels, allocator)
    _sync(device)
    start = time.perf_counter()
    floor()
    _sync(device)
    floor_s = time.perf_counter() - start
    start = time.perf_counter()
    metrics = retrieval_metrics(emb, labels, ks=(1, 10, 100, 1000 if n > 1000 else 10))
    _sync(device)
    seconds = time.perf_counter() - start
    return {"n": n, "dim": DIM, "classes": classes, "floor_s": round(floor_s, 3), "seconds": round(seconds, 3),
            "x_floor": round(seconds / floor_s, 2), "recall@1": round(metrics["recall@1"], 4)}


def check_torchrun(gpus: int) -> dict:
    """One demo-recipe training step in each of `gpus` processes with NCCL (the distributed RLL)."""
    if gpus < 2:
        return {"skipped": f"{gpus} GPU(s): needs more than one"}
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={gpus}", "--master_addr=127.0.0.1",
           "--master_port=29517", __file__, "--ddp-worker"]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    result = {"processes": gpus, "seconds": round(time.perf_counter() - start, 1), "ok": done.returncode == 0}
    if done.returncode:
        result["error"] = done.stderr.strip().splitlines()[-5:]
    else:
        result.update(json.loads(done.stdout.strip().splitlines()[-1]))
    return result


def ddp_worker() -> None:
    """Under torchrun: a DDP step of small_cnn with the distributed RLL over NCCL."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from ranklist.losses.distributed import DistributedRankedListLoss
    from ranklist.models import build_model

    rank = int(os.environ["LOCAL_RANK"])
    torch.cuda.set_device(rank)
    dist.init_process_group("nccl")
    device = torch.device("cuda", rank)
    torch.manual_seed(0)
    model = DistributedDataParallel(build_model("small_cnn", pretrained=False, embedding_dim=64, image_size=32).to(device), device_ids=[rank])
    loss_fn = DistributedRankedListLoss()
    images = torch.randn(32, 3, 32, 32, generator=torch.Generator().manual_seed(rank)).to(device)
    labels = (torch.arange(32) // 4 + 8 * rank).to(device)
    loss = sum(loss_fn(out, labels) for out in model(images).values())
    loss.backward()
    grad = next(model.parameters()).grad.detach().clone()
    gathered = [torch.empty_like(grad) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, grad)
    if rank == 0:
        print(json.dumps({"loss": float(loss), "gradients_equal_across_ranks": all(torch.equal(g, grad) for g in gathered)}))
    dist.destroy_process_group()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ddp-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.ddp_worker:
        return ddp_worker()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    fallback = device.type != "cuda"
    sizes = SIZES["cpu" if fallback else "gpu"]
    if fallback:
        torch.set_num_threads(min(2, torch.get_num_threads()))
    start = time.perf_counter()
    report = {"benchmark": "gpu_check", "device": str(device), "fallback": fallback, "torch": torch.__version__,
              "card": torch.cuda.get_device_name(device) if not fallback else None,
              "gpus": torch.cuda.device_count() if torch.cuda.is_available() else 0}
    report["loss"] = check_loss(sizes["loss_n"], device, 1 if fallback else args.repeats)
    report["loss_compile"] = check_compile(sizes["compile_n"], device, args.repeats)
    report["demo_amp"] = check_demo(sizes["iterations"], sizes["backbone"], sizes["overrides"], device)
    print("demo", json.dumps(report["demo_amp"]), file=sys.stderr)
    report["eval"] = check_eval(sizes["eval_n"], sizes["eval_classes"], device)
    print("eval", json.dumps(report["eval"]), file=sys.stderr)
    report["torchrun"] = check_torchrun(0 if fallback else report["gpus"])
    report["seconds"] = round(time.perf_counter() - start, 1)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
