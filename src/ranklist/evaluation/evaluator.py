"""Embed a dataset split with a model and score every level and their concatenation."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace

import torch
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from ranklist.collectives import gather_rows, process_group, shard_bounds
from ranklist.data.splits import shared_labels
from ranklist.evaluation.clustering import nmi
from ranklist.evaluation.metric_names import CONCAT, DEFAULT_KS, NMI
from ranklist.evaluation.prefetch import Prefetcher
from ranklist.evaluation.retrieval import retrieval_metrics
from ranklist.models import evaluation_embedding, model_inference


def show_progress(progress: bool) -> bool:
    """Progress bars only on a terminal; logs and CI get no carriage-return noise."""
    return progress and sys.stderr.isatty()


@torch.no_grad()
def embed_dataset(
    model: torch.nn.Module,
    dataset: Dataset,
    *,
    batch_size: int = 128,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
    progress: bool = True,
    description: str = "embed",
    prefetch: bool | None = None,
    precision: str | None = None,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Raw embeddings of every item per level (model in eval mode, no grad) and the labels.

    Each item is read and transformed once. With num_workers=0 and prefetch, a background thread
    makes the next batches while the model embeds the current one (the same batches, in order:
    the embeddings are bit-identical to prefetch=False); num_workers > 0 uses loader processes.
    prefetch=None: only where a core is left over by torch's threads (on 2 cores running 2 torch
    threads it competed with the forward and was slower: docs/results.md, Throughput).
    precision "bf16": the forward under bf16 autocast (faster on bf16 hardware; the
    embeddings are returned in float32 and differ from fp32 ones in the third significant digit);
    None: the one the model records (its run's, ranklist.models.inference; fp32 for others).
    """
    inference = model_inference(model)
    if precision is not None:
        inference = replace(inference, precision=precision)
    if prefetch is None:
        prefetch = (os.cpu_count() or 1) > torch.get_num_threads()
    if len(dataset) == 0:
        raise ValueError("cannot embed an empty dataset")
    # Its own generator: embedding draws nothing from the global RNG (training stays reproducible).
    loader = DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, generator=torch.Generator()
    )
    was_training = model.training
    model.eval()
    chunks: dict[str, list[torch.Tensor]] = {}
    labels = []
    device = torch.device(device)
    cast = inference.autocast(device)
    with Prefetcher(loader) if prefetch and num_workers == 0 else nullcontext(loader) as batches:
        try:
            for images, batch_labels in tqdm(
                batches, total=len(loader), desc=description, disable=not show_progress(progress), leave=False
            ):
                with cast:
                    outputs = model(images.to(device))
                for level, emb in outputs.items():
                    chunks.setdefault(level, []).append(emb.float().cpu())
                labels.append(torch.as_tensor(batch_labels))
        finally:
            model.train(was_training)
    return {level: torch.cat(parts) for level, parts in chunks.items()}, torch.cat(labels)


class _Together(torch.nn.Module):
    """Several models on one batch: their outputs keyed "name/level"."""

    def __init__(self, models: Mapping[str, torch.nn.Module]) -> None:
        super().__init__()
        self.models = torch.nn.ModuleDict(models)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return {f"{name}/{level}": emb for name, model in self.models.items() for level, emb in model(images).items()}


def _part(outputs: dict[str, torch.Tensor] | None, name: str) -> dict[str, torch.Tensor] | None:
    """One model's per-level outputs out of _Together's."""
    if outputs is None:
        return None
    return {key.split("/", 1)[1]: emb for key, emb in outputs.items() if key.split("/", 1)[0] == name}


@dataclass(frozen=True)
class Embedded:
    """A split's raw per-level embeddings and labels, and its gallery's (None where it searches itself).

    With a gallery, labels are numbered by class identity across both splits (shared_labels)."""

    outputs: dict[str, torch.Tensor]
    labels: torch.Tensor
    gallery_outputs: dict[str, torch.Tensor] | None = None
    gallery_labels: torch.Tensor | None = None


def scoring_device(device: str | torch.device) -> torch.device:
    """Where the retrieval metrics are computed: the embedding device when it is a CUDA GPU (the
    blocked scan works on device tensors), else the CPU. k-means (NMI) stays on the CPU (faiss-cpu)."""
    device = torch.device(device)
    return device if device.type == "cuda" else torch.device("cpu")


@dataclass
class Evaluator:
    """Scores a model on a split: Recall@K, MAP@R, R-Precision and NMI per level and concatenated.

    With `gallery_dataset` the split's items are queries searching that gallery (In-shop).
    With `distributed=True` under an initialised process group, every process must call `embed`:
    each embeds a contiguous shard and all receive the whole split in its order (then score once).
    """

    batch_size: int = 128
    device: str = "cpu"
    num_workers: int = 0
    progress: bool = True
    ks: Sequence[int] = DEFAULT_KS
    compute_nmi: bool = True
    seed: int = 0
    distributed: bool = False
    precision: str | None = None  # of the forward: fp32 | bf16 | None, the model's own (see embed_dataset)

    def embed(self, model: torch.nn.Module, dataset: Dataset, gallery_dataset: Dataset | None = None) -> Embedded:
        """Raw per-level embeddings of the split (and the gallery). Each split numbers its own classes,
        so with a gallery both are renumbered by class identity."""
        outputs, labels = self._embed_split(model, dataset, "embed")
        if gallery_dataset is None:
            return Embedded(outputs, labels)
        gallery_outputs, gallery_labels = self._embed_split(model, gallery_dataset, "embed gallery")
        shared = shared_labels(dataset, gallery_dataset)
        if shared is not None:
            labels, gallery_labels = (torch.from_numpy(numbers) for numbers in shared)
        return Embedded(outputs, labels, gallery_outputs, gallery_labels)

    def embed_models(
        self, models: Mapping[str, torch.nn.Module], dataset: Dataset, gallery_dataset: Dataset | None = None
    ) -> dict[str, Embedded]:
        """{name: what `embed` returns} for several models in one pass: each image is read and
        transformed once and goes through every model (a run's final test and its pretrained baseline)."""
        together = self.embed(_Together(models).eval(), dataset, gallery_dataset)
        return {
            name: Embedded(
                _part(together.outputs, name),
                together.labels,
                _part(together.gallery_outputs, name),
                together.gallery_labels,
            )
            for name in models
        }

    def _embed_split(self, model: torch.nn.Module, dataset: Dataset, description: str):
        options = dict(
            batch_size=self.batch_size,
            device=self.device,
            num_workers=self.num_workers,
            progress=self.progress,
            description=description,
            precision=self.precision,
        )
        rank, world = process_group() if self.distributed else (0, 1)
        if world == 1 or len(dataset) < world:  # too small to shard: every process embeds it all
            return embed_dataset(model, dataset, **options)
        bounds = shard_bounds(len(dataset), world)
        outputs, labels = embed_dataset(model, Subset(dataset, range(bounds[rank], bounds[rank + 1])), **options)
        sizes = [b - a for a, b in zip(bounds, bounds[1:])]

        def gather(rows: torch.Tensor) -> torch.Tensor:  # on the model's device (NCCL needs CUDA tensors)
            return gather_rows(rows.to(self.device), sizes).cpu()

        return {level: gather(emb) for level, emb in outputs.items()}, gather(labels)

    def evaluate(
        self,
        model: torch.nn.Module,
        dataset: Dataset,
        gallery_dataset: Dataset | None = None,
        levels: Sequence[str] | None = None,
    ) -> dict[str, dict[str, float]]:
        return self.score(self.embed(model, dataset, gallery_dataset), levels)

    def score(self, embedded: Embedded, levels: Sequence[str] | None = None) -> dict[str, dict[str, float]]:
        """Metrics of already computed per-level embeddings (see evaluate)."""
        outputs, labels = embedded.outputs, embedded.labels
        gallery_outputs, gallery_labels = embedded.gallery_outputs, embedded.gallery_labels
        levels = list(levels or outputs)
        views = {level: [level] for level in levels}
        if len(levels) > 1:
            views[CONCAT] = levels
        results = {}
        for name, chosen in views.items():
            emb = evaluation_embedding(outputs, chosen)
            gallery = evaluation_embedding(gallery_outputs, chosen) if gallery_outputs is not None else None
            metrics = retrieval_metrics(
                emb.to(scoring_device(self.device)), labels, self.ks, gallery=gallery, gallery_labels=gallery_labels
            )
            if self.compute_nmi:
                metrics[NMI] = nmi(
                    emb if gallery is None else torch.cat([emb, gallery]),
                    labels if gallery is None else torch.cat([labels, gallery_labels]),
                    seed=self.seed,
                )
            results[name] = metrics
        return results
