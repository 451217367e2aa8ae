"""Plots of a run, drawn on matplotlib Figures directly (no pyplot state) and written atomically."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ranklist.atomic import atomic_write_bytes
from ranklist.evaluation.metric_names import MAP_AT_R, RECALL_AT_1, VIEW_ORDER, recall_key, recall_ks, validation_key


def save_figure(figure: Figure, path: Path) -> None:
    """Write a matplotlib figure to `path` as PNG, atomically."""
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue())


def plot_training_curves(records: list[dict[str, Any]], path: Path, best_step: int | None = None) -> None:
    """Loss and learning rate per iteration; validation Recall@1 / MAP@R with the selected step (a
    run without a validation split gets the loss panel alone)."""
    val = [r for r in records if validation_key(RECALL_AT_1) in r]
    figure = Figure(figsize=(10, 3.8) if val else (5.6, 3.8))
    if val:
        loss_ax, val_ax = figure.subplots(1, 2, gridspec_kw={"wspace": 0.6})  # room for the lr axis
    else:
        loss_ax = figure.subplots()
    train = [r for r in records if "loss" in r]
    if train:
        loss_ax.plot([r["step"] for r in train], [r["loss"] for r in train], color="tab:blue", label="loss")
        lr_ax = loss_ax.twinx()
        lr_ax.plot([r["step"] for r in train], [r["lr"] for r in train], color="tab:gray", linestyle=":", label="lr")
        lr_ax.set_ylabel("learning rate (backbone)", color="tab:gray")
    loss_ax.set(title="training loss (sum over levels)", xlabel="iteration", ylabel="loss")
    if val:
        _plot_validation(val_ax, val, best_step)
    save_figure(figure, path)


def _plot_validation(val_ax, val: list[dict[str, Any]], best_step: int | None) -> None:
    for key, colour in ((validation_key(RECALL_AT_1), "tab:green"), (validation_key(MAP_AT_R), "tab:purple")):
        if key in val[0]:
            val_ax.plot([r["step"] for r in val], [100 * r[key] for r in val], marker="o", color=colour, label=key)
    if best_step is not None:
        val_ax.axvline(best_step, color="tab:red", linestyle="--", label=f"selected (iteration {best_step})")
    val_ax.set(title="validation (held-out training classes)", xlabel="iteration", ylabel="%")
    val_ax.legend(loc="lower right")


def plot_recall_at_k(test: dict[str, dict[str, float]], path: Path, baseline: dict[str, float] | None = None) -> None:
    """Recall@K on the test split per level and concatenated (and the baseline)."""
    rows = [(view, test[view]) for view in VIEW_ORDER if view in test]
    if baseline is not None:
        rows.insert(0, ("before training", baseline))
    ks = recall_ks(rows[-1][1])
    figure = Figure(figsize=(max(6, 1.6 * len(ks) + 3), 4))
    ax = figure.subplots()
    width = 0.8 / len(rows)
    for i, (name, metrics) in enumerate(rows):
        values = [100 * metrics.get(recall_key(k), np.nan) for k in ks]
        bars = ax.bar(
            np.arange(len(ks)) + i * width - 0.4 + width / 2,
            values,
            width,
            label=name,
            color="lightgray" if name == "before training" else None,
        )
        for bar, value in zip(bars, values):
            ax.annotate(
                f"{value:.1f}", (bar.get_x() + bar.get_width() / 2, value), ha="center", va="bottom", fontsize=7
            )
    ax.set_xticks(np.arange(len(ks)), [f"R@{k}" for k in ks])
    ax.set(ylabel="%", ylim=(0, 105), title="Recall@K on the unseen test classes")
    ax.legend(fontsize=8, ncol=len(rows), loc="upper left")
    save_figure(figure, path)


def plot_retrieval_grid(
    query_images: np.ndarray,
    neighbour_images: np.ndarray,
    correct: np.ndarray,
    path: Path,
    query_titles: list[str] | None = None,
) -> None:
    """Each row: a query, then its nearest neighbours framed green (same class) or red (not)."""
    q, k = correct.shape
    figure = Figure(figsize=(1.3 * (k + 1), 1.4 * q))
    axes = np.asarray(figure.subplots(q, k + 1, squeeze=False))
    for row in range(q):
        cells = [query_images[row]] + [neighbour_images[row, j] for j in range(k)]
        for col, image in enumerate(cells):
            ax = axes[row, col]
            ax.imshow(image, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_title((query_titles[row] if query_titles else "query")[:22], fontsize=7)
                colour, width = "black", 1.5
            else:
                colour, width = ("tab:green", 4) if correct[row, col - 1] else ("tab:red", 4)
            for spine in ax.spines.values():
                spine.set_edgecolor(colour)
                spine.set_linewidth(width)
    axes[0, 1].annotate(
        f"top-{k} neighbours (green: same class, red: other class)", (0, 1.35), xycoords="axes fraction", fontsize=8
    )
    save_figure(figure, path)


def plot_embedding_projection(
    embeddings: np.ndarray,
    labels: np.ndarray,
    path: Path,
    *,
    max_classes: int = 20,
    seed: int = 0,
    class_names: list[str] | None = None,
) -> None:
    """PCA of the test embeddings of a few classes to 2-D, coloured by class."""
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    chosen = np.sort(rng.choice(classes, size=min(max_classes, len(classes)), replace=False))
    mask = np.isin(labels, chosen)
    points = embeddings[mask] - embeddings[mask].mean(axis=0)
    _, _, vt = np.linalg.svd(points, full_matrices=False)
    xy = points @ vt[:2].T
    figure = Figure(figsize=(7, 6))
    ax = figure.subplots()
    for i, c in enumerate(chosen):
        sel = labels[mask] == c
        name = class_names[c] if class_names else str(c)
        ax.scatter(xy[sel, 0], xy[sel, 1], s=30, color=_colour(i), label=name[:24])
    ax.set(title=f"test embeddings, PCA to 2-D ({len(chosen)} classes)", xlabel="PC 1", ylabel="PC 2")
    ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))
    save_figure(figure, path)


def _colour(i: int):
    from matplotlib import colormaps

    return colormaps["tab20"](i % 20)


def neighbours_for_grid(
    embeddings: np.ndarray,
    labels: np.ndarray,
    num_queries: int,
    k: int,
    seed: int,
    gallery: np.ndarray | None = None,
    gallery_labels: np.ndarray | None = None,
):
    """Random queries and their k nearest neighbours (cosine, ties by lower index): among the
    queries themselves (self excluded), or in `gallery`. Returns (queries, neighbour rows, correct)."""
    import torch

    from ranklist.evaluation.retrieval import scan_gallery
    from ranklist.unit_rows import unit_rows

    def unit(x: np.ndarray) -> torch.Tensor:
        return unit_rows(torch.as_tensor(x, dtype=torch.float32))

    self_retrieval = gallery is None
    gallery, gallery_labels = (embeddings, labels) if self_retrieval else (gallery, gallery_labels)
    rng = np.random.default_rng(seed)
    queries = np.sort(rng.choice(len(labels), size=min(num_queries, len(labels)), replace=False))
    k = min(k, len(gallery_labels) - (1 if self_retrieval else 0))
    # Only the chosen queries are scanned (not every item: that would be a whole retrieval pass at scale).
    # Self-retrieval takes one neighbour more and drops the query itself, which keeps the others' order.
    top, _ = scan_gallery(
        unit(embeddings[queries]),
        unit(gallery),
        torch.as_tensor(labels[queries]),
        torch.as_tensor(gallery_labels),
        k + self_retrieval,
        exclude_self=False,
    )
    if self_retrieval:
        top = torch.stack([row[row != query][:k] for row, query in zip(top, queries.tolist())])
    neighbours = top.numpy()
    return queries, neighbours, gallery_labels[neighbours] == labels[queries][:, None]


def plot_pair_distances(
    panels: dict[str, Any], path: Path, bounds: Any = None, level: str = "H", note: str = ""
) -> None:
    """The paper's picture: positive and negative test-pair distance histograms per panel ("before
    training", "after training": PairDistances), with alpha and alpha - m and the share of pairs on
    the wrong side of each (bounds: reporting.pair_distances.Boundaries, or None for losses without them)."""
    figure = Figure(figsize=(5.4 * len(panels), 4.8), layout="constrained")
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    bins = np.linspace(0, 2, 81)  # unit vectors: distances lie in [0, 2]
    for ax, (title, d) in zip(axes, panels.items()):
        ax.hist(
            d.positive,
            bins=bins,
            density=True,
            alpha=0.55,
            color="tab:green",
            label=f"positive pairs ({len(d.positive):,})",
        )
        ax.hist(
            d.negative,
            bins=bins,
            density=True,
            alpha=0.55,
            color="tab:red",
            label=f"negative pairs ({len(d.negative):,})",
        )
        if bounds is not None:
            wrong = d.wrong_side(bounds)
            ax.axvline(
                bounds.positive,
                color="darkgreen",
                linestyle="--",
                linewidth=1.5,
                label=f"α − m = {bounds.positive:.2f}: "
                f"{100 * wrong['positives_beyond_alpha_minus_m']:.1f} % of positives beyond it",
            )
            ax.axvline(
                bounds.negative,
                color="darkred",
                linestyle="--",
                linewidth=1.5,
                label=f"α = {bounds.negative:.2f}: "
                f"{100 * wrong['negatives_within_alpha']:.1f} % of negatives within it",
            )
        ax.set(title=title, xlabel=f"distance (Euclidean, L2-normalised level {level})", ylabel="density", xlim=(0, 2))
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)
    figure.suptitle(
        "test pair distances"
        + (" against RLL's boundaries" if bounds is not None else "")
        + (f"\n{note}" if note else ""),
        fontsize=10,
    )
    save_figure(figure, path)
