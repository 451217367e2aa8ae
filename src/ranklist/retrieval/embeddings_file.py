"""The embeddings file (`ranklist embed` writes it, `ranklist index` / `search` read it): one .npz.

Arrays: "embedding" float32 [N, D] (the evaluation embedding: levels concatenated, L2-normalised),
"labels" int64 [N] (optional), "paths" str [N] (optional: the items' image files), and
"level_<L>" float32 [N, D_L] per raw level (optional), "model" a JSON string (optional: the
fingerprint of the model that embedded them, so an index refuses another model's). The reader
checks every shape and type and names the file and the array at fault.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ranklist.atomic import atomic_path
from ranklist.models.fingerprint import ModelFingerprint


@dataclass(frozen=True)
class EmbeddingsFile:
    """The contents of an .npz embeddings file: embeddings, labels, paths, levels and their model."""

    embedding: np.ndarray
    labels: np.ndarray | None = None
    paths: np.ndarray | None = None
    levels: dict[str, np.ndarray] = field(default_factory=dict)
    model: ModelFingerprint | None = None
    precision: str | None = None  # of the forward that made them (fp32 | bf16), when known

    @classmethod
    def from_outputs(
        cls,
        outputs: Mapping,
        labels: np.ndarray | None = None,
        paths: Sequence | None = None,
        model: ModelFingerprint | None = None,
        precision: str | None = None,
    ) -> EmbeddingsFile:
        """From a model's raw per-level outputs (torch tensors): the evaluation embedding is derived here.
        `model`: ranklist.models.fingerprint.model_fingerprint(model), recorded so indexes can check it."""
        from ranklist.models import evaluation_embedding

        return cls(
            evaluation_embedding(outputs).numpy(),
            labels,
            None if paths is None else np.array([str(p) for p in paths]),
            {level: value.numpy() for level, value in outputs.items()},
            model,
            precision,
        )

    def ids(self) -> np.ndarray:
        """The items' ids: their paths when known, else their row numbers."""
        return self.paths if self.paths is not None else np.arange(len(self.embedding))


def _check(record: EmbeddingsFile, where: str) -> EmbeddingsFile:
    x = record.embedding
    if x.ndim != 2 or x.shape[0] == 0 or not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{where}: 'embedding' must be a non-empty float array [N, D], got {x.dtype} {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{where}: 'embedding' has non-finite values")
    n = len(x)
    for name, array in (
        ("labels", record.labels),
        ("paths", record.paths),
        *((f"level_{k}", v) for k, v in record.levels.items()),
    ):
        if array is not None and len(array) != n:
            raise ValueError(f"{where}: '{name}' has {len(array)} rows but 'embedding' has {n}")
    if record.labels is not None and not np.issubdtype(record.labels.dtype, np.integer):
        raise ValueError(f"{where}: 'labels' must be integers, got {record.labels.dtype}")
    return record


def write_embeddings(record: EmbeddingsFile, path: str | Path) -> None:
    """Checked, then written atomically."""
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"an embeddings file must end in .npz, got {path}")
    _check(record, str(path))
    arrays = {"embedding": record.embedding, **{f"level_{k}": v for k, v in record.levels.items()}}
    arrays.update({k: v for k, v in (("labels", record.labels), ("paths", record.paths)) if v is not None})
    if record.model is not None:
        arrays["model"] = np.array(json.dumps(record.model.to_dict()))
    if record.precision is not None:
        arrays["precision"] = np.array(record.precision)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)


def read_embeddings(path: str | Path) -> EmbeddingsFile:
    """An embeddings file, checked; a missing, truncated or foreign file is a ValueError naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"embeddings file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as source:
            arrays = {name: source[name] for name in source.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise ValueError(f"cannot read embeddings file {path}: {error}") from None
    if "embedding" not in arrays:
        raise ValueError(f"{path} has no 'embedding' array (write it with ranklist embed); it has {sorted(arrays)}")
    levels = {name[6:]: value for name, value in arrays.items() if name.startswith("level_")}
    model = None
    if "model" in arrays:
        try:
            model = ModelFingerprint.from_dict(json.loads(str(arrays["model"])))
        except ValueError as error:  # JSONDecodeError is a ValueError too
            raise ValueError(f"{path}: 'model' is not a model fingerprint: {error}") from None
    precision = str(arrays["precision"]) if "precision" in arrays else None
    return _check(
        EmbeddingsFile(arrays["embedding"], arrays.get("labels"), arrays.get("paths"), levels, model, precision),
        str(path),
    )
