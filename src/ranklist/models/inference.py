"""How a model's forward runs when it embeds: the run records it, every path that embeds reads it.

A run evaluates in its resolved `precision.eval` (bf16 on CPUs and GPUs that compute it natively)
and its memory format (`train.channels_last`); its checkpoints carry that record, so `evaluate`,
`embed`, `index` and `serve` embed the way the run's own test did (and reproduce its numbers)
unless told otherwise. Checkpoints written before the record embed in fp32, contiguous.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass
from typing import Any

import torch

PRECISIONS = ("fp32", "bf16")  # of the embedding forward


@dataclass(frozen=True)
class Inference:
    """How a model's evaluation forward runs: its precision and memory format."""

    precision: str = "fp32"  # bf16: the forward under bf16 autocast, embeddings returned in float32
    channels_last: bool = False  # the model's memory format

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {self.precision!r}")
        if not isinstance(self.channels_last, bool):
            raise ValueError(f"channels_last must be true or false, got {self.channels_last!r}")

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def autocast(self, device: str | torch.device) -> AbstractContextManager[Any]:
        device = torch.device(device)
        return torch.autocast(device.type, dtype=torch.bfloat16) if self.precision == "bf16" else nullcontext()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: Any) -> Inference:
        if not isinstance(record, dict) or set(record) - {"precision", "channels_last"}:
            raise ValueError(f"not an inference record (precision, channels_last): {record!r}")
        return cls(**record)


def model_inference(model: torch.nn.Module) -> Inference:
    """The record a model carries (a model built in code, not loaded: fp32, contiguous)."""
    return getattr(model, "inference", None) or Inference()
