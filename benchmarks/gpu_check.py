"""GPU readiness check (`make gpu-check`): what training does on CUDA, measured; prints JSON.

Each section prints one JSON line as it finishes ({"section": ..., ...}); the last line is the whole
report. On a GPU (a few minutes on one card; peak memory of each section reported, kept under 24 GB):
- loss: the Ranked List Loss forward + backward on float32 embeddings (what train_step feeds it:
  the level outputs cast to float32, also under bf16 autocast) at N = 4,096 / 16,384 / 32,768,
  "query" and "full" gradients, against the two-product floor (two N x N x 512 float32 products,
  one after the other);
- loss_compile: torch.compile of the loss kernel (compile time, then its speed against eager);
- train_step: the trainer's own step (build_run + train_step) of the demo recipe (its frozen
  blocks, frozen and folded BN, precision.frozen auto) on a folder of synthetic images, as the
  recipe has it and with precision.train=bf16 (bf16 autocast, as the trainer uses it): images/s, loss finite;
- eval: the trainer's evaluator (run.evaluator): embedding a synthetic test split (images/s, at
  precision.eval auto), and scoring at Stanford Online Products' size (60,502 items, 11,316 classes,
  the recipe's levels) with and without NMI, so that NMI's share is timed;
- torchrun (2 GPUs or more): build_run + train_step on 2 NCCL processes against one process on the
  same global batch (largest parameter difference after 3 steps), and `ranklist train` under
  torchrun end to end.
Without a GPU it runs a CPU fallback of every section at tiny sizes in seconds, so that it cannot
rot ("fallback": true); `--device cuda` without a usable GPU fails with exit code 1.

    python benchmarks/gpu_check.py                # CUDA if present, else the CPU fallback
    python benchmarks/gpu_check.py --device cpu   # the fallback, forced
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from ranklist import ranked_list_loss
from ranklist.training.config import load_config

ROOT = Path(__file__).resolve().parents[1]
DIM = 512
PEAK_LIMIT_GIB = 24.0
SIZES = {
    "gpu": dict(
        loss_n=[4096, 16384, 32768],
        compile_n=16384,
        steps=30,
        train_classes=64,
        test_classes=200,
        per_class=4,
        score_n=60502,
        score_classes=11316,
        overrides=[],
    ),
    "cpu": dict(
        loss_n=[64, 256],
        compile_n=0,
        steps=2,
        train_classes=8,
        test_classes=10,
        per_class=2,
        score_n=600,
        score_classes=120,
        overrides=[
            "model.backbone=small_cnn",
            "model.freeze_blocks=0",
            "data.image_size=32",
            "data.classes_per_batch=4",
            "data.samples_per_class=2",
            "model.embedding_dim=16",
            "eval.batch_size=8",
            "train.threads=2",
        ],
    ),
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], object], device: torch.device) -> tuple[float, object]:
    _sync(device)
    start = time.perf_counter()
    value = fn()
    _sync(device)
    return time.perf_counter() - start, value


def _best_time(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Best of `repeats` timed calls after one untimed warm-up call."""
    fn()
    return min(_timed(fn, device)[0] for _ in range(repeats))


def _section(name: str, device: torch.device, measure: Callable[[], dict]) -> dict:
    """Run one section with its own peak-memory count; print its JSON line at once."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    result = measure()
    if device.type == "cuda" and "skipped" not in result:
        result["peak_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    print(json.dumps({"section": name, **result}), flush=True)
    return result


def _loss_inputs(n: int, device: torch.device):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, DIM, generator=gen).to(device)
    labels = torch.randint(0, max(n // 3, 1), (n,), generator=gen).to(device)  # ~3 per class, as C x 3
    return x, labels


def check_loss(sizes: list[int], device: torch.device, repeats: int) -> dict:
    """Loss forward + backward on float32 embeddings against two N x N x D float32 products."""
    rows = []
    for n in sizes:
        x, labels = _loss_inputs(n, device)
        other = torch.randn_like(x)

        def floor() -> None:  # one product at a time: the floor holds one N x N matrix, as the loss never does
            for _ in range(2):
                (x @ other.T).sum()

        row = {"n": n, "dtype": "float32", "floor_s": round(_best_time(floor, device, repeats), 4)}
        for gradient in ("query", "full"):

            def step() -> None:
                emb = x.clone().requires_grad_(True)
                ranked_list_loss(emb, labels, gradient=gradient, compile=False).backward()

            seconds = _best_time(step, device, repeats)
            row[gradient] = {"seconds": round(seconds, 4), "x_floor": round(seconds / row["floor_s"], 2)}
        rows.append(row)
    return {"rows": rows}


def check_compile(n: int, device: torch.device, repeats: int) -> dict:
    """The fused (torch.compile) loss kernel: its first call (compiling) and its speed against eager."""
    if not n:
        return {"skipped": "CPU fallback (compiling takes tens of seconds; the CPU path is tested elsewhere)"}
    x, labels = _loss_inputs(n, device)

    def step(compile: bool) -> Callable[[], None]:
        def run() -> None:
            emb = x.clone().requires_grad_(True)
            ranked_list_loss(emb, labels, compile=compile).backward()

        return run

    first, _ = _timed(step(True), device)
    compiled, eager = _best_time(step(True), device, repeats), _best_time(step(False), device, repeats)
    with torch.no_grad():
        same = float((ranked_list_loss(x, labels, compile=True) - ranked_list_loss(x, labels, compile=False)).abs())
    return {
        "n": n,
        "first_call_s": round(first, 2),
        "compiled_s": round(compiled, 4),
        "eager_s": round(eager, 4),
        "x_eager": round(compiled / eager, 3),
        "abs_loss_difference": same,
    }


def write_fixture(root: Path, sizes: dict) -> Path:
    """root/train and root/test class folders of 64 px PNGs (smooth random images, a colour per class)."""
    from PIL import Image

    gen = np.random.default_rng(0)
    for split, classes in (("train", sizes["train_classes"]), ("test", sizes["test_classes"])):
        for c in range(classes):
            folder = root / split / f"{split[:2]}{c:04d}"
            folder.mkdir(parents=True, exist_ok=True)
            tint = gen.integers(0, 256, 3)
            for k in range(sizes["per_class"]):
                coarse = (tint * 0.6 + gen.integers(0, 100, (8, 8, 3))).clip(0, 255).astype(np.uint8)
                Image.fromarray(coarse).resize((64, 64), Image.BILINEAR).save(folder / f"{k}.png")
    return root


def fixture_config(fixture: Path, device: torch.device, sizes: dict, extra: list[str] = ()):
    """The demo recipe on the fixture folder, on `device`, without downloads (pretrained off)."""
    overrides = [
        "data.name=folder",
        f"data.root={fixture}",
        "data.val_fraction=0",
        "model.pretrained=false",
        f"train.device={device}",
        "train.tensorboard=false",
        *sizes["overrides"],
        *extra,
    ]
    return load_config(ROOT / "configs" / "demo.yaml", overrides)


def _batches(run, count: int) -> list:
    """`count` batches from the trainer's own loader (decoded once, so that the steps alone are timed)."""
    from ranklist.training.loader import training_loader
    from ranklist.training.state import TrainState

    loader = iter(training_loader(run, TrainState()))
    return [next(loader) for _ in range(count)]


def check_train_step(fixture: Path, device: torch.device, sizes: dict) -> dict:
    """The trainer's step on the demo recipe, as the recipe has it and under bf16 autocast (precision.train=bf16)."""
    from ranklist.training import TrainState, build_run, train_step

    result = {}
    for name, extra in (("recipe", []), ("amp_bf16", ["precision.train=bf16"])):
        run = build_run(fixture_config(fixture, device, sizes, extra))
        run.model.train()
        batches, state = _batches(run, 4), TrainState()
        train_step(run, state, batches[0])  # warm-up (cuDNN's algorithm choice, the allocator)
        seconds, losses = _timed(
            lambda: [train_step(run, state, batches[i % len(batches)]) for i in range(sizes["steps"])], device
        )
        result[name] = {
            "images_per_s": round(run.batch_size * sizes["steps"] / seconds, 1),
            "step_s": round(seconds / sizes["steps"], 4),
            "loss_finite": bool(np.isfinite(losses).all()),
            "precision": asdict(run.precision),
            "parameters_finite": all(bool(torch.isfinite(p).all()) for p in run.model.parameters()),
        }
    cfg = run.config
    result.update(
        backbone=cfg.model.backbone,
        batch=run.batch_size,
        image_size=cfg.data.image_size,
        steps=sizes["steps"],
        freeze_blocks=cfg.model.freeze_blocks,
        freeze_bn=cfg.model.freeze_bn,
    )
    return result


def check_eval(fixture: Path, device: torch.device, sizes: dict) -> dict:
    """The trainer's evaluator: embedding the test split, then scoring an SOP-sized split (NMI timed)."""
    from ranklist.evaluation import Embedded
    from ranklist.training import build_run

    run = build_run(fixture_config(fixture, device, sizes))
    evaluator = run.evaluator
    evaluator.embed(run.model, run.splits.queries)  # warm-up
    embed_s, _ = _timed(lambda: evaluator.embed(run.model, run.splits.queries), device)
    n, classes = sizes["score_n"], sizes["score_classes"]
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % classes
    outputs = {
        level: torch.randn(classes, dim, generator=gen)[labels] + 2.0 * torch.randn(n, dim, generator=gen)
        for level, dim in run.model.embedding_dims.items()
    }
    embedded = Embedded(outputs, labels)
    retrieval_s, metrics = _timed(lambda: replace(evaluator, compute_nmi=False).score(embedded), device)
    total_s, with_nmi = _timed(lambda: evaluator.score(embedded), device)
    return {
        "embed_images": len(run.splits.queries),
        "embed_images_per_s": round(len(run.splits.queries) / embed_s, 1),
        "precision": evaluator.precision,
        "score_n": n,
        "score_classes": classes,
        "views": list(metrics),
        "retrieval_s": round(retrieval_s, 2),
        "with_nmi_s": round(total_s, 2),
        "nmi_s": round(total_s - retrieval_s, 2),
        "concat_recall@1": round(with_nmi["concat"]["recall@1"], 4),
        "concat_nmi": round(with_nmi["concat"]["nmi"], 4),
    }


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _torchrun(args: list[str], timeout: int = 480) -> tuple[float, subprocess.CompletedProcess]:
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={_free_port()}",
        *args,
    ]
    start = time.perf_counter()
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    return round(time.perf_counter() - start, 1), done


def _failure(done: subprocess.CompletedProcess) -> dict:
    return {"ok": False, "error": (done.stderr or done.stdout).strip().splitlines()[-8:]}


def check_torchrun(fixture: Path, device: torch.device, sizes: dict, gpus: int, on_cpu: bool) -> dict:
    """2 processes against 1 on the same global batch (build_run + train_step), then `ranklist train` under torchrun."""
    if device.type == "cuda" and gpus < 2:
        return {"skipped": f"{gpus} GPU: needs 2"}
    if device.type != "cuda" and not on_cpu:
        return {"skipped": "CPU fallback: needs 2 GPUs (--torchrun-cpu runs it with gloo)"}
    seconds, done = _torchrun([__file__, "--ddp-worker", str(fixture), "--device", device.type])
    result = {
        "two_vs_one": {"seconds": seconds, **json.loads(done.stdout.strip().splitlines()[-1])}
        if done.returncode == 0
        else _failure(done)
    }
    config = fixture_config(
        fixture,
        device,
        sizes,
        [
            "train.iterations=4",
            "train.log_every=1",
            "train.val_every=4",
            "train.checkpoint_every=4",
            "eval.nmi=false",
            "eval.baseline=false",
            "eval.grid_queries=2",
        ],
    )
    from ranklist.training.config import config_to_yaml

    (fixture / "ddp.yaml").write_text(config_to_yaml(config))
    out = fixture / "ddp-run"
    seconds, done = _torchrun(
        ["-m", "ranklist", "train", str(fixture / "ddp.yaml"), "--out", str(out), "--no-progress"]
    )
    if done.returncode:
        result["ranklist_train"] = _failure(done)
        return result
    summary = json.loads((out / "summary.json").read_text())
    result["ranklist_train"] = {
        "ok": True,
        "seconds": seconds,
        "iterations": summary["iterations"],
        "device": summary["hardware"]["device"],
        "train_images_per_s": summary["train_images_per_s"],
        "test_recall@1": summary["test"]["concat"]["recall@1"],
    }
    return result


def ddp_worker(fixture: Path, device_type: str) -> None:
    """Under torchrun: 3 steps of build_run + train_step, each process on its share of a global batch;
    process 0 also steps one process's run on the whole batch. Batch norms on running statistics
    (eval mode): per-process batch statistics are what DDP legitimately computes differently."""
    from ranklist.collectives import gather_objects
    from ranklist.data import ClassBalancedBatchSampler
    from ranklist.training import TrainState, build_run, train_step
    from ranklist.training.distributed import init_from_env, shutdown

    rank, world, _ = init_from_env(device_type)
    config = fixture_config(fixture, torch.device(device_type), SIZES["gpu" if device_type == "cuda" else "cpu"])
    shared = build_run(config, rank, world)
    single = build_run(config, 0, 1) if rank == 0 else None
    d = config.data
    samplers = [
        ClassBalancedBatchSampler(
            shared.splits.train.labels, d.classes_per_batch, d.samples_per_class, seed=1, rank=r, world_size=world
        )
        for r in range(world)
    ]
    states = TrainState(), TrainState()
    for step in range(3):
        torch.manual_seed(100 + step)  # the same augmentation draws for the global batch in every process
        items = [shared.splits.train[i] for sampler in samplers for i in sampler.batch(step, 0)]
        images, labels = torch.stack([x for x, _ in items]), torch.tensor([y for _, y in items])
        mine = slice(rank * len(items) // world, (rank + 1) * len(items) // world)
        for run, state, batch in (
            (shared, states[0], (images[mine], labels[mine])),
            (single, states[1], (images, labels)),
        ):
            if run is not None:
                run.model.eval()
                train_step(run, state, batch)
    mine = [p.detach().cpu() for p in shared.model.parameters()]
    everyone = gather_objects(mine)
    if rank == 0:
        want = [p.detach().cpu() for p in single.model.parameters()]
        diff = max(float((a - b).abs().max()) for a, b in zip(mine, want))
        scale = max(float(b.abs().max()) for b in want)
        agree = all(torch.equal(a, b) for other in everyone for a, b in zip(other, mine))
        print(
            json.dumps(
                {
                    "ok": diff <= 1e-3 * scale and agree,
                    "processes": world,
                    "steps": 3,
                    "batch": len(items),
                    "max_abs_difference": diff,
                    "max_relative_difference": diff / scale,
                    "processes_agree": agree,
                }
            ),
            flush=True,
        )
    shutdown(clean=True)


def _device(name: str | None) -> torch.device:
    """The device to check: CUDA when present by default; --device cuda without a usable GPU is an error."""
    if name and name.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(
            f"gpu_check: --device {name} but no CUDA device is usable here (torch {torch.__version__}, "
            f"CUDA build {torch.version.cuda}); run without --device for the CPU fallback"
        )
    return torch.device(name or ("cuda" if torch.cuda.is_available() else "cpu"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--torchrun-cpu", action="store_true", help="run the torchrun section on the CPU too (gloo, 2 processes)"
    )
    parser.add_argument("--ddp-worker", metavar="FIXTURE", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.ddp_worker:
        return ddp_worker(Path(args.ddp_worker), args.device or "cpu")
    device = _device(args.device)
    fallback = device.type != "cuda"
    sizes = SIZES["cpu" if fallback else "gpu"]
    if fallback:
        torch.set_num_threads(min(2, torch.get_num_threads()))
    start = time.perf_counter()
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    report = {
        "benchmark": "gpu_check",
        "device": str(device),
        "fallback": fallback,
        "torch": torch.__version__,
        "card": None if fallback else torch.cuda.get_device_name(device),
        "gpus": gpus,
    }
    repeats = 1 if fallback else args.repeats
    with tempfile.TemporaryDirectory() as folder:
        fixture = write_fixture(Path(folder), sizes)
        report["loss"] = _section("loss", device, lambda: check_loss(sizes["loss_n"], device, repeats))
        report["loss_compile"] = _section(
            "loss_compile", device, lambda: check_compile(sizes["compile_n"], device, repeats)
        )
        report["train_step"] = _section("train_step", device, lambda: check_train_step(fixture, device, sizes))
        report["eval"] = _section("eval", device, lambda: check_eval(fixture, device, sizes))
        report["torchrun"] = _section(
            "torchrun", device, lambda: check_torchrun(fixture, device, sizes, gpus, args.torchrun_cpu)
        )
    peaks = [section["peak_gib"] for section in report.values() if isinstance(section, dict) and "peak_gib" in section]
    report.update(
        peak_gib_max=max(peaks, default=None),
        peak_under_limit=all(p < PEAK_LIMIT_GIB for p in peaks),
        seconds=round(time.perf_counter() - start, 1),
    )
    print(json.dumps(report), flush=True)
    failed = [name for name in ("two_vs_one", "ranklist_train") if report["torchrun"].get(name, {}).get("ok") is False]
    failed += [
        name
        for name, r in report["train_step"].items()
        if isinstance(r, dict) and not (r["loss_finite"] and r["parameters_finite"])
    ]
    if failed or not report["peak_under_limit"]:
        raise SystemExit(f"gpu_check: failed: {failed or ['peak memory over ' + str(PEAK_LIMIT_GIB) + ' GiB']}")


if __name__ == "__main__":
    main()
