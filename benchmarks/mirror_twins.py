"""Recall@1 on the queries whose class has a mirror-image twin class, and on the rest; prints JSON.

Why the demo trains without horizontal flips (docs/results.md, Fourth round): on the emoji
benchmark 22 pairs of classes are each other's mirror image ("left-facing fist" / "right-facing
fist", "man walking" / "man walking facing right"; found by name, ranklist.data.mirror_names). For
each checkpoint, the test split is embedded as the run embedded it (its preprocessing, the
concatenated evaluation embedding) and every query's nearest other image is checked.

    python benchmarks/mirror_twins.py runs/demo/checkpoints/last.pt [more checkpoints]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from ranklist.data import build_dataset
from ranklist.data.mirror_names import mirror_twins
from ranklist.evaluation import Evaluator
from ranklist.evaluation.retrieval import scan_gallery
from ranklist.models import evaluation_embedding, load_model


def recall_at_1_by_group(embedding: torch.Tensor, labels: np.ndarray, class_names: list[str]) -> dict:
    """Recall@1 (%; the query itself excluded, cosine similarity, retrieval_metrics' tie rule) over all
    queries, the twin classes' and the others'."""
    unit = torch.nn.functional.normalize(embedding.float(), dim=1)
    tensor_labels = torch.as_tensor(labels)
    _, first_rank = scan_gallery(unit, unit, tensor_labels, tensor_labels, 1, exclude_self=True)
    hit = (first_rank == 1).numpy()
    twins = mirror_twins(class_names)
    twin = np.array([class_names[label] in twins for label in labels], dtype=bool)

    def recall(mask: np.ndarray) -> float | None:
        return round(float(hit[mask].mean()) * 100, 2) if mask.any() else None

    return {
        "all": recall(np.ones_like(twin)),
        "twin_classes": recall(twin),
        "other_classes": recall(~twin),
        "twin_queries": int(twin.sum()),
        "other_queries": int((~twin).sum()),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--dataset", default="emoji", help="a dataset whose classes have names (default emoji)")
    parser.add_argument("--root")
    parser.add_argument("--split", default="test")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    args = parser.parse_args(argv)
    evaluator = Evaluator(batch_size=128, progress=False, precision=args.precision)
    report = {"benchmark": "mirror_twins", "dataset": args.dataset, "split": args.split, "checkpoints": {}}
    for path in args.checkpoints:
        model = load_model(path)
        dataset = build_dataset(
            args.dataset, args.split, root=args.root, transform=model.preprocessing.transform(train=False)
        )
        outputs, labels, _, _ = evaluator.embed(model, dataset)
        names = list(dataset.class_names)
        report["checkpoints"][path] = recall_at_1_by_group(evaluation_embedding(outputs), np.asarray(labels), names)
        report.setdefault(
            "twin_classes", sorted({names[label] for label in np.unique(np.asarray(labels))} & mirror_twins(names))
        )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
