"""An index made from a model and a dataset split in one step (`ranklist index --checkpoint`).

The split is read through the model's own preprocessing record (never rebuilt from an image size),
each item keeps its id, label and image path, images held in memory (emoji, Fashion-MNIST) get a
thumbnail stored in the index, and the index records the model's fingerprint.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ranklist.data.thumbnails import thumbnail
from ranklist.models.fingerprint import check_same_model, model_fingerprint
from ranklist.retrieval.index import EmbeddingIndex, Items, add_to_index, build_index, next_ids

THUMBNAIL_SIZE = 64  # side of the thumbnails stored for in-memory images


def embed_items(
    model: torch.nn.Module,
    dataset: Any,
    ids: np.ndarray,
    *,
    batch_size: int = 64,
    progress: bool = False,
    device: str | torch.device = "cpu",
) -> tuple[np.ndarray, Items]:
    """(evaluation embeddings [N, D], the items: ids, labels, paths or thumbnails) of a dataset split."""
    from ranklist.evaluation import embed_dataset
    from ranklist.models import evaluation_embedding

    outputs, labels = embed_dataset(
        model, dataset, batch_size=batch_size, device=device, progress=progress, description="index"
    )
    paths = getattr(dataset, "paths", None)
    thumbnails = None
    if paths is None:  # no file to show: keep a small copy of each image
        thumbnails = np.stack([thumbnail(dataset.load_image(i), THUMBNAIL_SIZE) for i in range(len(dataset))])
    items = Items(
        np.asarray(ids),
        labels.numpy().astype(np.int64),
        None if paths is None else np.array([str(p) for p in paths]),
        thumbnails,
    )
    return evaluation_embedding(outputs).numpy(), items


def index_from_model(
    model: torch.nn.Module,
    dataset: Any,
    *,
    kind: str = "flat",
    source: dict[str, Any] | None = None,
    batch_size: int = 64,
    progress: bool = False,
    device: str | torch.device = "cpu",
    **options: Any,
) -> EmbeddingIndex:
    """Embed every item of `dataset` (built with model.preprocessing.transform(train=False)) on `device`
    (the model's) and index it."""
    embeddings, items = embed_items(
        model, dataset, np.arange(len(dataset)), batch_size=batch_size, progress=progress, device=device
    )
    meta = {"class_names": list(getattr(dataset, "class_names", []) or []) or None, "sources": [source or {}]}
    return build_index(embeddings, items, kind=kind, model=model_fingerprint(model), meta=meta, **options)


def _shared_class_numbers(index: EmbeddingIndex, items: Items, names: list[str]) -> Items:
    """Renumber the added items' labels into the index's classes (by class name), new classes appended."""
    known = index.meta.get("class_names")
    if items.labels is None or not known or not names:
        return items
    numbers = {name: i for i, name in enumerate(known)}
    for name in names:
        numbers.setdefault(name, len(numbers))
    index.meta["class_names"] = list(numbers)
    mapping = np.array([numbers[name] for name in names], dtype=np.int64)
    return Items(items.ids, mapping[items.labels], items.paths, items.thumbnails)


def add_from_model(
    index: EmbeddingIndex,
    model: torch.nn.Module,
    dataset: Any,
    *,
    source: dict[str, Any] | None = None,
    batch_size: int = 64,
    progress: bool = False,
    device: str | torch.device = "cpu",
) -> EmbeddingIndex:
    """Append a dataset split's items to an index built by the same model (refused otherwise)."""
    fingerprint = model_fingerprint(model)
    check_same_model(index.model, fingerprint, "the added items")  # before the embedding work
    embeddings, items = embed_items(
        model, dataset, next_ids(index, len(dataset)), batch_size=batch_size, progress=progress, device=device
    )
    items = _shared_class_numbers(index, items, list(getattr(dataset, "class_names", []) or []))
    add_to_index(index, embeddings, items, fingerprint)
    index.meta["sources"] = [*index.meta.get("sources", []), source or {}]
    return index
