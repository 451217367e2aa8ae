"""A model saved with its configuration, re-created from the checkpoint alone."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ranklist.atomic import atomic_torch_save
from ranklist.data.preprocessing import Preprocessing
from ranklist.models.embedding_model import EmbeddingModel, build_model


def model_checkpoint(model: EmbeddingModel) -> dict[str, Any]:
    """{"model_config", "model_state", "preprocessing"}; the config says pretrained=False: the weights are here."""
    return {"model_config": {**model.config, "pretrained": False}, "model_state": model.state_dict(),
            "preprocessing": model.preprocessing.to_dict()}


def save_model(model: EmbeddingModel, path: str | Path) -> None:
    atomic_torch_save(model_checkpoint(model), path)


def load_model(checkpoint: str | Path | Mapping[str, Any], map_location: str | torch.device = "cpu") -> EmbeddingModel:
    """Re-create a model from a checkpoint (a path or a dict) holding "model_config" and "model_state";
    other keys (trainer checkpoints) are ignored."""
    where = "checkpoint dict" if isinstance(checkpoint, Mapping) else str(checkpoint)
    source: Any = checkpoint
    if not isinstance(checkpoint, Mapping):
        if not Path(checkpoint).is_file():
            raise FileNotFoundError(f"checkpoint not found: {checkpoint}")
        try:
            # Our own files hold a plain config dict beside tensors; trainer checkpoints may add
            # optimiser/sampler state, so the full unpickler is used.
            source = torch.load(checkpoint, map_location=map_location, weights_only=False)
        except Exception as error:  # pickle/zip errors of a corrupt or foreign file
            raise ValueError(f"cannot read checkpoint {checkpoint}: {error}") from error
    if not isinstance(source, Mapping) or "model_config" not in source or "model_state" not in source:
        keys = sorted(source) if isinstance(source, Mapping) else type(source).__name__
        raise ValueError(f"{where} is not a ranklist model checkpoint (needs model_config and model_state, has {keys})")
    config = {**source["model_config"], "pretrained": False}
    try:
        model = build_model(**config)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where} has an unusable model_config {source['model_config']}: {error}") from error
    try:
        model.load_state_dict(source["model_state"])
    except RuntimeError as error:  # missing/unexpected keys or shape mismatches, all listed by torch
        raise ValueError(f"{where}: model_state does not fit its model_config: {' '.join(str(error).split())}") from error
    if "preprocessing" in source:  # older checkpoints: the backbone's default at the model's image size
        model.preprocessing = Preprocessing.from_dict(source["preprocessing"])
    return model.to(map_location)
