"""Where bf16 pays: which devices compute it natively, and the `precision` section resolved on a device."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ranklist.training.config import PRECISIONS, ConfigError, PrecisionConfig


@dataclass(frozen=True)
class Precisions:
    """What each forward of a run computes in, "fp32" or "bf16": the `precision` settings resolved."""

    train: str
    frozen: str
    eval: str


def resolve_precisions(settings: PrecisionConfig, model: torch.nn.Module, device: torch.device) -> Precisions:
    """The run's precisions on `device`; applies the frozen one to the model's backbone."""
    return Precisions(
        training_precision(settings.train, device),
        frozen_precision(model, settings.frozen, device),
        evaluation_precision(settings.eval, device),
    )


def native_bf16(device: torch.device) -> bool:
    """bf16 in hardware: CUDA cards of compute capability 8.0 (Ampere) or later, x86 CPUs with
    AVX512-BF16 or AMX (elsewhere bf16 is emulated and slower than fp32)."""
    if device.type == "cuda":
        return cuda_native_bf16(torch.cuda.get_device_capability(device))
    if device.type != "cpu":
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cuda_native_bf16(capability: tuple[int, int]) -> bool:
    """Whether a card of this compute capability computes bf16 natively. torch.cuda.is_bf16_supported()
    also says yes for older cards, which emulate it (slower than fp32)."""
    return tuple(capability) >= (8, 0)


def evaluation_precision(setting: str, device: torch.device) -> str:
    """precision.eval resolved: "auto" is bf16 only where the device computes it natively."""
    return ("bf16" if native_bf16(device) else "fp32") if setting == "auto" else setting


def training_precision(setting: str, device: torch.device) -> str:
    """precision.train resolved: "auto" is bf16 on CUDA cards that compute it natively only (on a CPU
    with bf16 units whole-network bf16 training was slower than fp32: docs/models.md)."""
    if setting != "auto":
        return setting
    return "bf16" if device.type == "cuda" and native_bf16(device) else "fp32"


def frozen_precision(model: torch.nn.Module, setting: str, device: torch.device) -> str:
    """Apply precision.frozen to the model's backbone; returns what runs ("fp32" or "bf16").

    "auto" takes bf16 only where it pays (frozen blocks, a backbone that can, native bf16);
    "bf16" asked where it cannot apply is an error that says why.
    """
    if setting not in PRECISIONS:
        raise ConfigError(f"precision.frozen must be one of {list(PRECISIONS)}, got {setting!r}")
    backbone = model.backbone
    frozen = getattr(backbone, "frozen_blocks", 0)
    able = callable(getattr(backbone, "set_frozen_precision", None))
    if setting == "bf16" and not frozen:
        raise ConfigError("precision.frozen=bf16 needs frozen blocks (model.freeze_blocks > 0)")
    if setting == "bf16" and not able:
        raise ConfigError(
            f"precision.frozen=bf16: backbone {model.config['backbone']!r} cannot run its frozen blocks apart"
        )
    chosen = "bf16" if setting == "bf16" or (setting == "auto" and frozen and able and native_bf16(device)) else "fp32"
    if able:
        backbone.set_frozen_precision(torch.bfloat16 if chosen == "bf16" else None)
    return chosen
