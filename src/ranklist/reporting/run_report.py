"""The plots of a finished run, from its metrics log and its test embeddings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ranklist.reporting.figures import (
    neighbours_for_grid, plot_embedding_projection, plot_recall_at_k, plot_retrieval_grid, plot_training_curves,
)


def display_image(dataset: Any, index: int) -> np.ndarray:
    """An item's image as uint8 [H, W, 3] for display (before any transform)."""
    image = dataset.load_image(index)
    if isinstance(image, torch.Tensor):
        return image.permute(1, 2, 0).numpy()
    return np.asarray(image.convert("RGB"))


def write_run_report(run_dir: Path, summary: dict[str, Any], records: list[dict[str, Any]], embeddings: torch.Tensor,
                     labels: torch.Tensor, test_set: Any, *, grid_queries: int = 8, seed: int = 0) -> dict[str, str]:
    plots_dir = Path(run_dir) / "plots"
    plots: dict[str, str] = {}
    best = summary.get("best") or {}
    plot_training_curves(records, plots_dir / "training_curves.png", best.get("step"))
    plots["training curves"] = "plots/training_curves.png"
    baseline = (summary.get("baseline") or {}).get("test", {}).get("H")
    plot_recall_at_k(summary["test"], plots_dir / "recall_at_k.png", baseline)
    plots["Recall@K per level"] = "plots/recall_at_k.png"
    emb, lab = embeddings.numpy(), labels.numpy()
    queries, neighbours, correct = neighbours_for_grid(emb, lab, grid_queries, 5, seed)
    query_images = np.stack([display_image(test_set, int(i)) for i in queries])
    neighbour_images = np.stack([[display_image(test_set, int(j)) for j in row] for row in neighbours])
    names = getattr(test_set, "class_names", None)
    titles = [names[lab[i]] for i in queries] if names else None
    plot_retrieval_grid(query_images, neighbour_images, correct, plots_dir / "retrieval_grid.png", titles)
    plots["retrieval grid (test queries, top-5)"] = "plots/retrieval_grid.png"
    plot_embedding_projection(emb, lab, plots_dir / "embedding_projection.png", seed=seed, class_names=names)
    plots["2-D projection of test embeddings"] = "plots/embedding_projection.png"
    return plots
