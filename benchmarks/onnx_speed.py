"""Images/s of the demo model through onnxruntime vs PyTorch eager on this CPU; prints JSON.

The demo model (configs of `ranklist demo`: EfficientNet-Lite0, RLL-(L,M,H), 3 x 128-d, 96 px) or a
checkpoint, exported with `ranklist.export.export_onnx`. Both runtimes get the same threads and the
same prepared batches, and run in alternating rounds, so that load on a shared machine hits both
alike; the ratio is of the same run.

    python benchmarks/onnx_speed.py                          # batch 1 and 32, 2 threads
    python benchmarks/onnx_speed.py --checkpoint runs/demo/checkpoints/best.pt --batch 1 8 64
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def demo_model(checkpoint: str | None):
    from ranklist.models import build_model, load_model
    from ranklist.training.demo import demo_config

    if checkpoint:
        return load_model(checkpoint)
    config = demo_config()
    model = build_model(
        config.model.backbone,
        embedding_dim=config.model.embedding_dim,
        levels=list(config.model.levels),
        pretrained=False,
        image_size=config.data.image_size,
    )
    return model.eval()


def rate(run, batch, seconds: float) -> tuple[int, float]:
    """(images, seconds) of repeated calls for at least `seconds`."""
    images, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        run(batch)
        images += len(batch)
    return images, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0, help="per runtime per round")
    args = parser.parse_args()

    import onnxruntime as ort
    import torch

    from ranklist.export import export_onnx
    from ranklist.models import evaluation_embedding

    torch.set_num_threads(args.threads)
    model = demo_model(args.checkpoint)
    size = model.preprocessing.image_size
    with tempfile.TemporaryDirectory() as tmp:
        export_onnx(model, Path(tmp) / "m.onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = args.threads, 1
        session = ort.InferenceSession(str(Path(tmp) / "m.onnx"), options, providers=["CPUExecutionProvider"])

    def pytorch(batch):
        with torch.inference_mode():
            return evaluation_embedding(model(batch))

    def onnx(batch):
        return session.run(["embedding"], {"images": batch.numpy()})[0]

    results = []
    for batch_size in args.batch:
        batch = torch.randn(batch_size, 3, size, size, generator=torch.Generator().manual_seed(0))
        diff = float((pytorch(batch) - torch.from_numpy(onnx(batch))).abs().max())
        totals = {"pytorch": [0, 0.0], "onnxruntime": [0, 0.0]}
        for _ in range(args.rounds):  # alternate: the machine's load falls on both
            for name, run in (("pytorch", pytorch), ("onnxruntime", onnx)):
                images, seconds = rate(run, batch, args.seconds)
                totals[name][0] += images
                totals[name][1] += seconds
        speed = {name: images / seconds for name, (images, seconds) in totals.items()}
        results.append(
            {
                "batch": batch_size,
                "pytorch_images_per_s": round(speed["pytorch"], 1),
                "onnxruntime_images_per_s": round(speed["onnxruntime"], 1),
                "onnxruntime_over_pytorch": round(speed["onnxruntime"] / speed["pytorch"], 3),
                "max_abs_diff": diff,
            }
        )
    print(
        json.dumps(
            {
                "model": {k: v for k, v in model.config.items() if k != "pretrained"},
                "image_size": size,
                "threads": args.threads,
                "torch": torch.__version__,
                "onnxruntime": ort.__version__,
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
