"""The plots of a finished run, from its metrics log and its test embeddings."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ranklist.atomic import atomic_write_bytes
from ranklist.data.thumbnails import thumbnail
from ranklist.evaluation import Embedded
from ranklist.reporting.figures import (
    neighbours_for_grid,
    plot_embedding_projection,
    plot_pair_distances,
    plot_recall_at_k,
    plot_retrieval_grid,
    plot_training_curves,
)
from ranklist.reporting.pair_distances import (
    PairDistances,
    distance_summary,
    loss_boundaries,
    pair_distances,
    sample_pairs,
)

THUMBNAIL = 128  # side of the square each image of the retrieval grid is shown in


def write_run_report(
    run_dir: Path,
    summary: dict[str, Any],
    records: list[dict[str, Any]],
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    test_set: Any,
    *,
    grid_queries: int = 8,
    seed: int = 0,
    gallery: tuple[torch.Tensor, torch.Tensor, Any] | None = None,
) -> dict[str, str]:
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
    gallery_emb, gallery_lab, gallery_set = (
        (None, None, test_set) if gallery is None else (gallery[0].numpy(), gallery[1].numpy(), gallery[2])
    )
    queries, neighbours, correct = neighbours_for_grid(emb, lab, grid_queries, 5, seed, gallery_emb, gallery_lab)
    query_images = np.stack([thumbnail(test_set.load_image(int(i)), THUMBNAIL) for i in queries])
    neighbour_images = np.stack(
        [[thumbnail(gallery_set.load_image(int(j)), THUMBNAIL) for j in row] for row in neighbours]
    )
    names = getattr(test_set, "class_names", None)
    titles = [names[lab[i]] for i in queries] if names else None
    plot_retrieval_grid(query_images, neighbour_images, correct, plots_dir / "retrieval_grid.png", titles)
    plots["retrieval grid (test queries, top-5)"] = "plots/retrieval_grid.png"
    plot_embedding_projection(emb, lab, plots_dir / "embedding_projection.png", seed=seed, class_names=names)
    plots["2-D projection of test embeddings"] = "plots/embedding_projection.png"
    return plots


def _picture_level(outputs: dict[str, torch.Tensor]) -> str:
    """The level drawn: H (the baseline's too) when the model has it, else its highest."""
    return "H" if "H" in outputs else [level for level in ("L", "M", "H") if level in outputs][-1]


def write_pair_picture(
    run_dir: Path, loss: Any, embedded: dict[str, Embedded], *, seed: int = 0, baseline_cache: Path | None = None
) -> tuple[dict[str, str], dict[str, Any]]:
    """plots/pair_distances.png and its summary entry (reporting/pair_distances.py).

    embedded: the test pass's {"final": ..., "baseline": ...} (baseline absent when not embedded);
    loss: the run's (name, preset, params). The baseline's distances are kept in `baseline_cache`
    (.npz) for runs that share its metrics."""
    final = embedded["final"]
    outputs, labels, gallery_outputs, gallery_labels = (
        final.outputs,
        final.labels,
        final.gallery_outputs,
        final.gallery_labels,
    )
    level = _picture_level(outputs)
    pairs = sample_pairs(labels.numpy(), None if gallery_labels is None else gallery_labels.numpy(), seed=seed)
    panels: dict[str, PairDistances] = {}
    before = _baseline_distances(embedded.get("baseline"), pairs, baseline_cache)
    if before is not None:
        panels["before training (pretrained backbone)"] = before
    panels["after training"] = pair_distances(
        outputs[level], pairs, None if gallery_outputs is None else gallery_outputs[level]
    )
    bounds = loss_boundaries(loss.name, loss.preset, dict(loss.params))
    note = (
        ""
        if len(pairs.negative.queries) == pairs.negative.total and len(pairs.positive.queries) == pairs.positive.total
        else (
            f"measured on a seeded uniform sample: {len(pairs.positive.queries):,} "
            f"of {pairs.positive.total:,} positive, "
            f"{len(pairs.negative.queries):,} of {pairs.negative.total:,} negative pairs"
        )
    )
    plot_pair_distances(panels, Path(run_dir) / "plots" / "pair_distances.png", bounds, level, note)
    named = {"before" if name.startswith("before") else "after": d for name, d in panels.items()}
    return {"pair distances before / after training": "plots/pair_distances.png"}, distance_summary(
        named, bounds, pairs, level
    )


def _baseline_distances(baseline: Embedded | None, pairs: Any, cache: Path | None) -> PairDistances | None:
    """The pretrained backbone's distances of the same pairs: measured, or read from `cache`."""
    if baseline is None:
        if cache is None or not cache.is_file():
            return None
        with np.load(cache) as kept:
            return PairDistances(kept["positive"], kept["negative"])
    gallery = None if baseline.gallery_outputs is None else baseline.gallery_outputs["H"]
    before = pair_distances(baseline.outputs["H"], pairs, gallery)
    if cache is not None:
        buffer = io.BytesIO()
        np.savez(buffer, positive=before.positive, negative=before.negative)
        atomic_write_bytes(cache, buffer.getvalue())
    return before
