"""Where bf16 pays: which devices compute it natively, and the frozen blocks' precision in training."""

from __future__ import annotations

from pathlib import Path

import torch

from ranklist.training.config import FROZEN_PRECISIONS, ConfigError


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
    """eval.precision resolved: "auto" is bf16 only where the device computes it natively."""
    return ("bf16" if native_bf16(device) else "fp32") if setting == "auto" else setting


def frozen_precision(model: torch.nn.Module, setting: str, device: torch.device) -> str:
    """Apply optim.frozen_precision to the model's backbone; returns what runs ("fp32" or "bf16").

    "auto" takes bf16 only where it pays (frozen blocks, a backbone that can, native bf16);
    "bf16" asked where it cannot apply is an error that says why.
    """
    if setting not in FROZEN_PRECISIONS:
        raise ConfigError(f"optim.frozen_precision must be one of {list(FROZEN_PRECISIONS)}, got {setting!r}")
    backbone = model.backbone
    frozen = getattr(backbone, "frozen_blocks", 0)
    able = callable(getattr(backbone, "set_frozen_precision", None))
    if setting == "bf16" and not frozen:
        raise ConfigError("optim.frozen_precision=bf16 needs frozen blocks (model.freeze_blocks > 0)")
    if setting == "bf16" and not able:
        raise ConfigError(
            f"optim.frozen_precision=bf16: backbone {model.config['backbone']!r} cannot run its frozen blocks apart"
        )
    chosen = "bf16" if setting == "bf16" or (setting == "auto" and frozen and able and native_bf16(device)) else "fp32"
    if able:
        backbone.set_frozen_precision(torch.bfloat16 if chosen == "bf16" else None)
    return chosen
