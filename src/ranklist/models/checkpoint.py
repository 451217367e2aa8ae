"""A model saved with its configuration, re-created from the checkpoint alone."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ranklist.atomic import atomic_torch_save, load_torch_checked
from ranklist.data.preprocessing import Preprocessing
from ranklist.models.embedding_model import EmbeddingModel, build_model
from ranklist.models.inference import Inference, model_inference


def model_checkpoint(model: EmbeddingModel) -> dict[str, Any]:
    """{"model_config", "model_state", "preprocessing", "inference"}; the config says pretrained=False:
    the weights are here."""
    return {
        "model_config": {**model.config, "pretrained": False},
        "model_state": model.state_dict(),
        "preprocessing": model.preprocessing.to_dict(),
        "inference": model_inference(model).to_dict(),
    }


def save_model(model: EmbeddingModel, path: str | Path) -> None:
    """Write the model's checkpoint (architecture, weights, preprocessing and inference records) atomically."""
    atomic_torch_save(model_checkpoint(model), path)


_NUMPY_CORE = getattr(np, "_core", None) or np.core  # numpy 2 renamed it
# What numpy's RNG state (saved in trainer checkpoints) needs to be unpickled, and nothing more.
_NUMPY_GLOBALS = [
    _NUMPY_CORE.multiarray._reconstruct,
    np.ndarray,
    np.dtype,
    *(type(np.dtype(t)) for t in (np.uint32, np.int64, np.float64)),
]


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A checkpoint file's contents, checksum verified (ranklist.atomic.load_torch_checked); a missing,
    empty, truncated, bit-flipped or foreign file is an error naming it."""
    # Only tensors, plain data and numpy arrays (the RNG states of trainer checkpoints) are
    # unpickled: a crafted file cannot run code when it is loaded.
    with torch.serialization.safe_globals(_NUMPY_GLOBALS):
        source = load_torch_checked(path, map_location, weights_only=True)
    if not isinstance(source, dict):
        raise ValueError(
            f"cannot read checkpoint {path}: it holds a {type(source).__name__}, not a ranklist checkpoint"
        )
    return source


def load_model(checkpoint: str | Path | Mapping[str, Any], map_location: str | torch.device = "cpu") -> EmbeddingModel:
    """Re-create a model from a checkpoint (a path or a dict) holding "model_config", "model_state" and
    "preprocessing"; other keys (trainer checkpoints) are ignored."""
    where = "checkpoint dict" if isinstance(checkpoint, Mapping) else str(checkpoint)
    source: Any = checkpoint if isinstance(checkpoint, Mapping) else read_checkpoint(checkpoint, map_location)
    if not isinstance(source, Mapping) or "model_config" not in source or "model_state" not in source:
        keys = sorted(source) if isinstance(source, Mapping) else type(source).__name__
        raise ValueError(f"{where} is not a ranklist model checkpoint (needs model_config and model_state, has {keys})")
    kinds = {
        key: type(source[key]).__name__
        for key in ("model_config", "model_state")
        if not isinstance(source[key], Mapping)
    }
    if kinds:
        raise ValueError(f"{where}: model_config and model_state must be dicts, got {kinds}")
    if "preprocessing" not in source:
        raise ValueError(
            f"{where} has no preprocessing record, so how its input images are made is unknown "
            "(ranklist's save_model and training runs write one)"
        )
    config = {**source["model_config"], "pretrained": False}
    try:
        model = build_model(**config)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where} has an unusable model_config {source['model_config']}: {error}") from error
    try:
        model.load_state_dict(source["model_state"])
    except RuntimeError as error:  # missing/unexpected keys or shape mismatches, all listed by torch
        raise ValueError(
            f"{where}: model_state does not fit its model_config: {' '.join(str(error).split())}"
        ) from error
    try:
        model.preprocessing = Preprocessing.from_dict(source["preprocessing"])
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from error
    if "inference" in source:  # older checkpoints: fp32, contiguous
        try:
            model.inference = Inference.from_dict(source["inference"])
        except (TypeError, ValueError) as error:
            raise ValueError(f"{where}: {error}") from error
    return model.to(map_location, memory_format=model.inference.memory_format)
