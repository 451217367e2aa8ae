"""Backbones with multi-level (L, M, H) embedding heads (docs/models.md)."""

from ranklist.models.backbones import BACKBONE_PREFIXES, BACKBONES, BackboneSpec, backbone_spec
from ranklist.models.checkpoint import load_model, model_checkpoint, save_model
from ranklist.models.embedding_model import LEVELS, EmbeddingModel, build_model, evaluation_embedding
from ranklist.models.inference import Inference, model_inference
from ranklist.models.parameter_groups import parameter_groups

__all__ = [
    "BACKBONE_PREFIXES",
    "BACKBONES",
    "LEVELS",
    "BackboneSpec",
    "EmbeddingModel",
    "Inference",
    "backbone_spec",
    "build_model",
    "evaluation_embedding",
    "load_model",
    "model_checkpoint",
    "model_inference",
    "parameter_groups",
    "save_model",
]
