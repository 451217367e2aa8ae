"""How much of a run evaluation takes at scale: a new user's CSV data set with a large held-out
split, trained briefly with the demo recipe; prints JSON.

The run shape of issue 16: 64 px images, a held-out test split of 65,090 images (1,415 unseen
classes x 46 images; self-retrieval, every image a query), 150 iterations of the demo recipe at
64 px (validation every 50 on 20 % of the training classes, evaluation in fp32: the defaults a
new user starts from; override them on the command line). The images are synthetic drawings
(flat shapes on white, a pattern per class, each image shifted and recoloured a little) written
once as PNG files under --data-dir; a CSV with a split column lists them. Speed only: the
metrics are not the point.

Reported: the run's time per phase (summary.json's time_s), the share of evaluation:
(baseline + validation + test + report) / train_steps, and a floor to read it against: the trained
model's forward alone over the test split (batches of eval.batch_size at the run's evaluation
precision, no reading or scoring), in seconds and as a share of train_steps. The pretrained
baseline is embedded in the test's pass (its forward is in "test"); eval.baseline=false leaves it out.

    python benchmarks/eval_share.py                                   # the issue's shape (~10 min here)
    python benchmarks/eval_share.py precision.eval=bf16               # the evaluation forward in bf16
    python benchmarks/eval_share.py precision.eval=bf16 eval.baseline=false   # and no pretrained baseline
    python benchmarks/eval_share.py --test-classes 50 --per-class 4 --train-classes 40 --iterations 2   # seconds
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ranklist.training import Trainer
from ranklist.training.config import load_config
from ranklist.training.run import build_run_model

ROOT = Path(__file__).resolve().parents[1]
EVALUATION = ("baseline", "validation", "test", "report")


def _drawing(pattern: np.ndarray, gen: np.random.Generator, size: int) -> np.ndarray:
    """A class's shapes (rows of top, left, height, width, r, g, b), shifted and recoloured a little."""
    image = np.full((size, size, 3), 255, dtype=np.uint8)
    shift = gen.integers(-3, 4, 2)
    for top, left, height, width, *colour in pattern:
        top, left = np.clip([top + shift[0], left + shift[1]], 0, size - 1)
        image[top : top + height, left : left + width] = np.clip(np.array(colour) + gen.integers(-20, 21, 3), 0, 255)
    return image


def write_dataset(
    folder: Path, train_classes: int, train_per_class: int, test_classes: int, per_class: int, size: int
) -> Path:
    """The PNG files and data.csv (path,label,split), once per shape (reused when data.csv exists)."""
    csv_path = folder / "data.csv"
    if csv_path.is_file():
        return csv_path
    gen = np.random.default_rng(0)
    rows = []
    for label in range(train_classes + test_classes):
        split, count = ("train", train_per_class) if label < train_classes else ("test", per_class)
        pattern = np.concatenate(
            [gen.integers(0, size - 8, (4, 2)), gen.integers(4, 24, (4, 2)), gen.integers(0, 256, (4, 3))], axis=1
        )
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            path = f"{label}/{i}.png"
            Image.fromarray(_drawing(pattern, gen, size)).save(folder / path)
            rows.append((path, f"c{label}", split))
    with tempfile.NamedTemporaryFile("w", newline="", dir=folder, delete=False, suffix=".tmp") as handle:
        csv.writer(handle).writerows([("path", "label", "split"), *rows])
    Path(handle.name).replace(csv_path)  # complete or absent: a half-written set is never reused
    return csv_path


def forward_floor(config, summary: dict, repeats: int = 3) -> float:
    """Seconds the model's forward alone would take over the test split: the fastest of a few
    batches of eval.batch_size random images, at the run's evaluation precision, times the batches."""
    model = (
        build_run_model(config)
        .eval()
        .to(memory_format=torch.channels_last if config.train.channels_last else torch.contiguous_format)
    )
    size, batch = config.data.image_size, config.eval.batch_size
    images = torch.randn(batch, 3, size, size)
    cast = torch.autocast("cpu", dtype=torch.bfloat16) if summary["precision"]["eval"] == "bf16" else nullcontext()
    best = float("inf")
    with torch.no_grad(), cast:
        for _ in range(repeats + 1):  # the first is a warm-up
            start = time.perf_counter()
            model(images)
            best = min(best, time.perf_counter() - start)
    return best * summary["dataset"]["test_images"] / batch


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="dotted overrides of the run (after the issue's shape)")
    parser.add_argument("--test-classes", type=int, default=1415)
    parser.add_argument("--per-class", type=int, default=46)
    parser.add_argument("--train-classes", type=int, default=800)
    parser.add_argument("--train-per-class", type=int, default=4)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=150)
    parser.add_argument("--data-dir", type=Path, default=Path.home() / ".cache" / "ranklist" / "eval_share")
    parser.add_argument("--out", type=Path, help="the run folder (default: a temporary one, removed)")
    args = parser.parse_args(argv)
    shape = f"{args.train_classes}x{args.train_per_class}_{args.test_classes}x{args.per_class}_{args.size}px"
    data = write_dataset(
        args.data_dir / shape, args.train_classes, args.train_per_class, args.test_classes, args.per_class, args.size
    )
    every = max(1, args.iterations // 3)
    overrides = [
        "data.name=csv",
        f"data.root={data}",
        f"data.image_size={args.size}",
        f"train.iterations={args.iterations}",
        f"train.val_every={every}",
        f"train.checkpoint_every={args.iterations}",
        "optim.milestones=[]",
        "data.val_fraction=0.2",
        "precision.eval=fp32",
        *args.overrides,
    ]  # a new user's defaults, not the demo's
    config = load_config(ROOT / "configs" / "demo.yaml", overrides)
    with tempfile.TemporaryDirectory() as scratch:
        summary = Trainer(config, args.out or Path(scratch) / "run", progress=False, log=lambda message: None).run()
    times = summary["time_s"]
    evaluation = sum(times.get(phase, 0.0) for phase in EVALUATION)
    floor = forward_floor(config, summary)
    print(
        json.dumps(
            {
                "benchmark": "eval_share",
                "shape": shape,
                "overrides": overrides,
                "hardware": summary["hardware"],
                "dataset": summary["dataset"],
                "time_s": times,
                "wall_time_s": summary["wall_time_s"],
                "train_images_per_s": summary["train_images_per_s"],
                "evaluation_x_training": round(evaluation / times["train_steps"], 3),
                "forward_floor_s": round(floor, 1),
                "forward_floor_x_training": round(floor / times["train_steps"], 3),
                "test_images_per_s": round(summary["dataset"]["test_images"] / times["test"], 1),
                "test_recall@1": summary["test"]["concat"]["recall@1"],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
