"""Backbones with multi-level (L, M, H) embedding heads (SPEC section 4)."""

from ranklist.models.embedding_model import (
    BACKBONES,
    LEVELS,
    EmbeddingModel,
    build_model,
    evaluation_embedding,
    load_model,
    model_checkpoint,
    parameter_groups,
    save_model,
)

__all__ = [
    "BACKBONES", "LEVELS", "EmbeddingModel", "build_model", "evaluation_embedding", "load_model",
    "model_checkpoint", "parameter_groups", "save_model",
]
