"""Embedding throughput (read + decode + transform + forward, images/s) against the forward alone; prints JSON.

A file-backed split like a new user's CSV data set (PNG files decoded by PIL on every read) and the
same images held in memory (like the emoji benchmark), through the recipe's evaluation transform
and model (configs/demo.yaml, at data.image_size; random weights: speed only). Measured, round by
round so that machine load hits all alike (median of the rounds):
- forward: the model on already transformed batches (the floor of embedding);
- embed_dataset without prefetching (read, then forward, in turn), with the prefetch thread
  (the default), and with loader processes (--workers);
- each path that embeds a checkpoint, side by side on the file-backed split: the run's own test
  phase (its Evaluator), `evaluate`/`embed` (the checkpoint loaded, embedding as its run recorded),
  `index` (embed_items), and the server's path (PNG uploads decoded in batches, PyTorch and ONNX);
  the checkpoint records precision.eval as the demo resolves it here (bf16 on bf16 CPUs).

    python benchmarks/embed_speed.py                       # 2,048 images at 64 px
    python benchmarks/embed_speed.py --n 512 --rounds 1 data.image_size=96
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ranklist.data import ArrayDataset, ImageFileDataset, build_transform
from ranklist.evaluation import embed_dataset
from ranklist.models import build_model
from ranklist.training.config import load_config
from ranklist.training.precision import evaluation_precision

ROOT = Path(__file__).resolve().parents[1]


def _images(n: int, size: int = 64) -> np.ndarray:
    """Drawings-like images: a few flat-coloured rectangles on white (PNG-compressible like real ones)."""
    gen = np.random.default_rng(0)
    images = np.full((n, size, size, 3), 255, dtype=np.uint8)
    for image in images:
        for _ in range(4):
            top, left = gen.integers(0, size - 8, 2)
            image[top : top + gen.integers(4, 24), left : left + gen.integers(4, 24)] = gen.integers(0, 256, 3)
    return images


def _checkpoint_paths(model, config, dataset, paths: list[Path], folder: Path, batch: int) -> dict:
    """Every path that embeds a checkpoint, as a callable each (see the module docstring)."""
    from ranklist.evaluation import Evaluator
    from ranklist.models import Inference, load_model, save_model
    from ranklist.retrieval.from_model import embed_items
    from ranklist.serving.embedders import OnnxEmbedder, TorchEmbedder
    from ranklist.serving.uploads import ServeLimits, Upload, decode_batch

    recorded = Inference(evaluation_precision(config.precision.eval, torch.device("cpu")), True)
    model.inference = recorded
    save_model(model, folder / "model.pt")
    model.inference = Inference()  # the other runs time the fp32 forward, as before
    uploads = [Upload(path.read_bytes(), path.name, "image/png") for path in paths]
    limits = ServeLimits(max_files=batch, max_request_pixels=10**9)

    def serve(embedder) -> None:
        for start in range(0, len(uploads), batch):
            embedder.embed(decode_batch(uploads[start : start + batch], limits, embedder.preprocessing))

    runs = {
        "paths/run_test_phase": lambda: Evaluator(batch_size=batch, progress=False, precision=recorded.precision).embed(
            model, dataset
        ),
        "paths/evaluate_embed": lambda: Evaluator(batch_size=batch, progress=False).embed(
            load_model(folder / "model.pt"), dataset
        ),
        "paths/index": lambda: embed_items(
            load_model(folder / "model.pt"), dataset, np.arange(len(dataset)), batch_size=batch
        ),
        "paths/serve_pytorch": lambda: serve(TorchEmbedder(load_model(folder / "model.pt"))),
    }
    try:
        from ranklist.export import export_onnx

        export_onnx(model, folder / "model.onnx")
        runs["paths/serve_onnx"] = lambda: serve(OnnxEmbedder(folder / "model.onnx"))
    except ValueError as error:  # the serve extra (onnx) is missing
        print(f"embed_speed: no ONNX path ({error})", file=sys.stderr)
    return runs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument(
        "overrides", nargs="*", help="dotted overrides of configs/demo.yaml (default data.image_size=64)"
    )
    parser.add_argument("--n", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    config = load_config(ROOT / "configs" / "demo.yaml", ["data.image_size=64", *args.overrides])
    d = config.data
    model = build_model(
        config.model.backbone,
        embedding_dim=config.model.embedding_dim,
        levels=config.model.levels,
        pretrained=False,
        image_size=d.image_size,
    ).to(memory_format=torch.channels_last)
    transform = build_transform(
        False, image_size=d.image_size, resize=d.resize, normalization=model.normalization, recipe=d.recipe
    )
    images, labels = _images(args.n), np.arange(args.n) % max(args.n // 4, 1)
    names = [str(c) for c in range(int(labels.max()) + 1)]
    batch = config.eval.batch_size
    with tempfile.TemporaryDirectory() as folder:
        paths = [Path(folder) / f"{i}.png" for i in range(args.n)]
        for path, image in zip(paths, images):
            Image.fromarray(image).save(path)
        splits = {
            "files": ImageFileDataset(paths, labels, names, transform=transform),
            "memory": ArrayDataset(images, labels, names, transform=transform),
        }
        ready = torch.stack([splits["memory"][i][0] for i in range(args.n)])

        def forward() -> None:
            with torch.no_grad():
                model.eval()
                for start in range(0, args.n, batch):
                    model(ready[start : start + batch])

        runs = {"forward": forward, **_checkpoint_paths(model, config, splits["files"], paths, Path(folder), batch)}
        for split, dataset in splits.items():
            for mode, options in {
                "plain": dict(prefetch=False),
                "prefetch_thread": {},
                f"workers_{args.workers}": dict(num_workers=args.workers),
            }.items():
                runs[f"{split}/{mode}"] = lambda dataset=dataset, options=options: embed_dataset(
                    model, dataset, batch_size=batch, progress=False, **options
                )
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.rounds):
            for name, run in runs.items():
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
                print(name, round(times[name][-1], 2), file=sys.stderr)
    median = {name: float(np.median(t)) for name, t in times.items()}
    print(
        json.dumps(
            {
                "benchmark": "embed_speed",
                "n": args.n,
                "image_size": d.image_size,
                "backbone": config.model.backbone,
                "checkpoint_precision": evaluation_precision(config.precision.eval, torch.device("cpu")),
                "batch": batch,
                "threads": args.threads,
                "rounds": args.rounds,
                "images_per_s": {name: round(args.n / s, 1) for name, s in median.items()},
                "x_forward": {name: round(s / median["forward"], 2) for name, s in median.items()},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
