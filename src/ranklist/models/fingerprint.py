"""Which model made an embedding: a hash of its weights plus its preprocessing record.

Embeddings of two different models (or of one model fed differently prepared images) live in
different spaces: comparing them gives confident nonsense. An index records the fingerprint of the
model that built it, and refuses queries and additions embedded by any other.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ModelFingerprint:
    """Which model made an embedding: a hash of its weights and its preprocessing record."""

    weights_sha256: str  # over the state dict's names, dtypes, shapes and bytes, in name order
    preprocessing: dict[str, Any]  # Preprocessing.to_dict()

    def to_dict(self) -> dict[str, Any]:
        return {"weights_sha256": self.weights_sha256, "preprocessing": self.preprocessing}

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> ModelFingerprint:
        try:
            return cls(str(record["weights_sha256"]), dict(record["preprocessing"]))
        except (KeyError, TypeError):
            raise ValueError(f"not a model fingerprint (needs weights_sha256 and preprocessing): {record!r}") from None

    def describe(self) -> str:
        size = self.preprocessing.get("image_size")
        return f"weights {self.weights_sha256[:12]}, {self.preprocessing.get('recipe')} {size}px"


def weights_sha256(state: Mapping[str, Any]) -> str:
    """SHA-256 of a state dict (tensors or arrays), independent of device and of dict order."""
    digest = hashlib.sha256()
    for name in sorted(state):
        value = state[name]
        array = value.detach().cpu().contiguous().numpy() if hasattr(value, "detach") else np.ascontiguousarray(value)
        digest.update(json.dumps([name, str(array.dtype), list(array.shape)]).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def model_fingerprint(model: Any) -> ModelFingerprint:
    """The fingerprint of an EmbeddingModel (its weights and its preprocessing record)."""
    return ModelFingerprint(weights_sha256(model.state_dict()), model.preprocessing.to_dict())


def check_same_model(index_model: ModelFingerprint | None, query_model: ModelFingerprint | None, what: str) -> None:
    """Refuse `what` (queries, additions) made by another model than the one that built the index.

    Either side unknown (an index or an embeddings file written without a model) is accepted.
    """
    if index_model is None or query_model is None or index_model == query_model:
        return
    same_weights = index_model.weights_sha256 == query_model.weights_sha256
    differs = "preprocessing" if same_weights else "model weights"
    raise ValueError(
        f"{what} come from another model than the index's ({differs} differ: index built by "
        f"{index_model.describe()}, {what} by {query_model.describe()}); "
        "embed them with the index's checkpoint or rebuild the index"
    )
