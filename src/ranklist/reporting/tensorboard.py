"""TensorBoard event files of a run (`train.tensorboard: true`), in RUN/tensorboard/.

    tensorboard --logdir runs/          # every run below, a study's runs side by side

What goes in: every metrics.jsonl record as it is written (train/loss and train/lr per logged
step, val/* per validation), the final test metrics (test/<level>/<metric>, baseline/H/<metric>,
pair_distances/<before|after>/<share>), the hparams view (the resolved config flattened, against the
final test metrics), the report's figures as images (report/<name>), and the test embedding in the
projector (a seeded sample of at most PROJECTOR_POINTS points: label and class name metadata, a
sprite of thumbnails).

Written with torch.utils.tensorboard, which needs the `tensorboard` package (the `tensorboard`
extra: pyproject.toml); without it a run says so once and writes no events.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ranklist.evaluation.metric_names import validation_metrics

TENSORBOARD_DIR = "tensorboard"
PROJECTOR_POINTS = 2000  # the sprite stays under 2,000 px a side at 32 px thumbnails (TensorBoard's limit is 8,192)
SPRITE_SIDE = 32
MISSING = (
    "train.tensorboard is on but the tensorboard package is not installed "
    "(pip install 'ranklist[tensorboard]'): no event files"
)


def _writer_class():
    try:
        import tensorboard  # noqa: F401  (torch.utils.tensorboard imports it; a clear message if absent)
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, bool | int | float | str]:
    """A nested config as dotted keys with values the hparams view takes (lists and null as text)."""
    flat: dict[str, bool | int | float | str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, (bool, int, float, str)):
            flat[name] = value
        else:
            flat[name] = json.dumps(value)
    return flat


def final_metrics(summary: dict[str, Any]) -> dict[str, float]:
    """The scalars of a finished run, by tag: test/<level>/<metric>, baseline/H/<metric>, pair_distances/..."""
    metrics = {
        f"test/{level}/{name}": value
        for level, values in summary.get("test", {}).items()
        for name, value in values.items()
    }
    baseline = (summary.get("baseline") or {}).get("test", {})
    metrics.update(
        {f"baseline/{level}/{name}": value for level, values in baseline.items() for name, value in values.items()}
    )
    wrong = (summary.get("pair_distances") or {}).get("wrong_side", {})
    metrics.update(
        {f"pair_distances/{stage}/{name}": value for stage, shares in wrong.items() for name, value in shares.items()}
    )
    return {
        tag: float(value) for tag, value in metrics.items() if isinstance(value, (int, float)) and math.isfinite(value)
    }


class RunBoard:
    """One run's event files; every method is a no-op once closed."""

    def __init__(self, run_dir: Path, writer_class: Callable, purge_step: int | None = None) -> None:
        self.log_dir = Path(run_dir) / TENSORBOARD_DIR
        # purge_step: a resumed run drops the events past its checkpoint, which it writes again.
        self.writer = writer_class(log_dir=str(self.log_dir), purge_step=purge_step, flush_secs=30)

    def record(self, record: dict[str, Any]) -> None:
        """A metrics.jsonl record: loss and lr as train/*, val/* as they are."""
        step = record["step"]
        for key, value in record.items():
            if key in ("step", "time_s") or not isinstance(value, (int, float)):
                continue
            self.writer.add_scalar(key if "/" in key else f"train/{key}", value, step)
        if validation_metrics(record):
            self.writer.flush()  # a validation is a moment worth seeing at once

    def finish(
        self,
        run_dir: Path,
        summary: dict[str, Any],
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        dataset: Any,
        *,
        seed: int = 0,
    ) -> None:
        """Final metrics, hparams, the report's figures and the projector."""
        step = int(summary.get("iterations", 0))
        metrics = final_metrics(summary)
        for tag, value in metrics.items():
            self.writer.add_scalar(tag, value, step)
        self._hparams(flatten(summary.get("config", {})), metrics)
        for rel in summary.get("plots", {}).values():
            self._image(Path(run_dir) / rel, step)
        self._projector(embeddings, labels, dataset, step, seed)
        self.writer.flush()

    def _hparams(self, hparams: dict[str, Any], metrics: dict[str, float]) -> None:
        """The hparams plugin's records in this run's own folder (SummaryWriter.add_hparams would
        open a sub-run), so a study's runs line up as rows."""
        from torch.utils.tensorboard.summary import hparams as hparams_summary

        file_writer = self.writer._get_file_writer()
        for record in hparams_summary(hparams, metrics):
            file_writer.add_summary(record)

    def _image(self, path: Path, step: int) -> None:
        from PIL import Image

        if path.is_file():
            with Image.open(path) as image:
                self.writer.add_image(f"report/{path.stem}", np.asarray(image.convert("RGB")), step, dataformats="HWC")

    def _projector(self, embeddings: torch.Tensor, labels: torch.Tensor, dataset: Any, step: int, seed: int) -> None:
        from ranklist.data.thumbnails import thumbnail

        rng = np.random.default_rng(seed)
        chosen = (
            np.arange(len(labels))
            if len(labels) <= PROJECTOR_POINTS
            else np.sort(rng.choice(len(labels), PROJECTOR_POINTS, replace=False))
        )
        names = getattr(dataset, "class_names", None)
        lab = labels.numpy()
        metadata = [[str(int(lab[i])), _cell(names[lab[i]]) if names else str(int(lab[i]))] for i in chosen]
        thumbnails = np.stack([thumbnail(dataset.load_image(int(i)), SPRITE_SIDE) for i in chosen])
        label_img = torch.from_numpy(thumbnails).permute(0, 3, 1, 2).float() / 255
        self.writer.add_embedding(
            embeddings[torch.as_tensor(chosen)].float(),
            metadata=metadata,
            label_img=label_img,
            global_step=step,
            tag="test_embedding",
            metadata_header=["label", "class"],
        )

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _cell(text: str) -> str:
    """A metadata.tsv cell: no tabs or line breaks."""
    return " ".join(str(text).split()) or "-"


def open_board(
    run_dir: Path, enabled: bool, *, purge_step: int | None = None, log: Callable[[str], None] = print
) -> RunBoard | None:
    """The run's board when train.tensorboard is on and the package is there; else None (said once)."""
    if not enabled:
        return None
    writer_class = _writer_class()
    if writer_class is None:
        log(f"warning: {MISSING}")
        return None
    return RunBoard(run_dir, writer_class, purge_step)
