"""The plots of a finished run, from its metrics log and its test embeddings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ranklist.data.image_decoding import to_rgb
from ranklist.reporting.figures import (
    neighbours_for_grid,
    plot_embedding_projection,
    plot_recall_at_k,
    plot_retrieval_grid,
    plot_training_curves,
)

THUMBNAIL = 128  # side of the square each image of the retrieval grid is shown in


def display_image(dataset: Any, index: int, size: int = THUMBNAIL) -> np.ndarray:
    """An item's image (before any transform) as uint8 [size, size, 3]: scaled to fit, aspect ratio
    kept, on a white square, so that photos of any sizes share one grid."""
    from PIL import Image

    image = dataset.load_image(index)
    image = Image.fromarray(image.permute(1, 2, 0).numpy()) if isinstance(image, torch.Tensor) else to_rgb(image)
    image.thumbnail((size, size), Image.Resampling.BILINEAR)
    canvas = Image.new("RGB", (size, size), "white")
    canvas.paste(image, ((size - image.width) // 2, (size - image.height) // 2))
    return np.asarray(canvas)


def write_run_report(run_dir: Path, summary: dict[str, Any], records: list[dict[str, Any]], embeddings: torch.Tensor,
                     labels: torch.Tensor, test_set: Any, *, grid_queries: int = 8, seed: int = 0,
                     gallery: tuple[torch.Tensor, torch.Tensor, Any] | None = None) -> dict[str, str]:
    """The run's plots; `gallery` = (embeddings, labels, dataset) when the test queries search a gallery."""
    plots_dir = Path(run_dir) / "plots"
    plots: dict[str, str] = {}
    best = summary.get("best") or {}
    plot_training_curves(records, plots_dir / "training_curves.png", best.get("step"))
    plots["training curves"] = "plots/training_curves.png"
    baseline = (summary.get("baseline") or {}).get("test", {}).get("H")
    plot_recall_at_k(summary["test"], plots_dir / "recall_at_k.png", baseline)
    plots["Recall@K per level"] = "plots/recall_at_k.png"
    emb, lab = embeddings.numpy(), labels.numpy()
    gallery_emb, gallery_lab, gallery_set = (None, None, test_set) if gallery is None else (gallery[0].numpy(), gallery[1].numpy(), gallery[2])
    queries, neighbours, correct = neighbours_for_grid(emb, lab, grid_queries, 5, seed, gallery_emb, gallery_lab)
    query_images = np.stack([display_image(test_set, int(i)) for i in queries])
    neighbour_images = np.stack([[display_image(gallery_set, int(j)) for j in row] for row in neighbours])
    names = getattr(test_set, "class_names", None)
    titles = [names[lab[i]] for i in queries] if names else None
    plot_retrieval_grid(query_images, neighbour_images, correct, plots_dir / "retrieval_grid.png", titles)
    plots["retrieval grid (test queries, top-5)"] = "plots/retrieval_grid.png"
    plot_embedding_projection(emb, lab, plots_dir / "embedding_projection.png", seed=seed, class_names=names)
    plots["2-D projection of test embeddings"] = "plots/embedding_projection.png"
    return plots
