"""What turns images into embeddings for the server: the PyTorch model or its ONNX export.

Both take the same input, a batch prepared by the model's own preprocessing record (`uploads.decode_batch`),
and give the evaluation embedding; both carry the model's fingerprint so that the server can check
it against the index's. Calls may come from several worker threads at once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from ranklist.data.preprocessing import Preprocessing
from ranklist.errors import require
from ranklist.models.fingerprint import ModelFingerprint, model_fingerprint


class Embedder(Protocol):
    """What the server embeds queries with: a model (PyTorch or ONNX Runtime) and its records."""

    preprocessing: Preprocessing
    fingerprint: ModelFingerprint
    runtime: str
    precision: str  # of the forward: fp32 | bf16

    def embed(self, batch: torch.Tensor) -> np.ndarray:
        """Normalised images [B, 3, S, S] -> evaluation embeddings [B, D] (float32)."""


@dataclass
class TorchEmbedder:
    """Embeds query batches with a PyTorch model, one forward at a time."""

    model: torch.nn.Module
    runtime: str = "pytorch"
    lock: threading.Lock = field(default_factory=threading.Lock)  # one forward at a time: torch threads itself

    def __post_init__(self) -> None:
        from ranklist.models import model_inference

        self.inference = model_inference(self.model)  # the run's precision and memory format
        self.model = self.model.to("cpu", memory_format=self.inference.memory_format).eval()
        self.preprocessing = self.model.preprocessing
        self.fingerprint = model_fingerprint(self.model)
        self.precision = self.inference.precision

    def embed(self, batch: torch.Tensor) -> np.ndarray:
        from ranklist.models import evaluation_embedding

        with self.lock, torch.inference_mode(), self.inference.autocast("cpu"):
            return evaluation_embedding(self.model(batch)).float().numpy()


class OnnxEmbedder:
    """ONNX Runtime on the CPU; its session is safe to call from several threads."""

    runtime = "onnxruntime"
    precision = "fp32"  # the exported graph computes in float32

    def __init__(self, path: str | Path, threads: int = 0) -> None:
        from ranklist.export.onnx_model import INPUT, OUTPUT_EMBEDDING, read_onnx_info

        ort = require("onnxruntime", "the ONNX runtime")
        info = read_onnx_info(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.preprocessing, self.fingerprint, self.info = info.preprocessing, info.fingerprint, info
        self._input, self._output = INPUT, OUTPUT_EMBEDDING

    def embed(self, batch: torch.Tensor) -> np.ndarray:
        feed = {self._input: np.ascontiguousarray(batch.numpy(), dtype=np.float32)}
        return self.session.run([self._output], feed)[0]


def load_embedder(checkpoint: str | Path | None = None, onnx: str | Path | None = None) -> Embedder:
    """Exactly one of a checkpoint (PyTorch) or an exported ONNX model."""
    if (checkpoint is None) == (onnx is None):
        raise ValueError("give exactly one of a checkpoint (--checkpoint) or an ONNX model (--onnx)")
    if onnx is not None:
        return OnnxEmbedder(onnx)
    from ranklist.models import load_model

    return TorchEmbedder(load_model(checkpoint))
