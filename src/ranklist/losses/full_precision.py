"""Losses compute in float32 (or float64) whatever autocast the caller has active.

A training loop with AMP often computes its loss inside `torch.autocast`; there the distance matrix
product would run in bfloat16/float16 (about 3 significant digits) and the RLL gradient would be
percents off the float32 one (docs/loss.md#precision). Autocast is switched off only for the inputs'
device type and only when it is on, so a float32 call outside autocast costs nothing extra.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any, TypeVar

import torch

HALF_DTYPES = (torch.float16, torch.bfloat16)

FnT = TypeVar("FnT", bound=Callable[..., Any])


def autocast_off(device: torch.device) -> AbstractContextManager:
    """A context without autocast on `device`'s type (a no-op when it is not enabled there)."""
    if torch.is_autocast_enabled(device.type):
        return torch.autocast(device.type, enabled=False)
    return nullcontext()


def at_least_float32(x: torch.Tensor) -> torch.Tensor:
    """float16/bfloat16 to float32; any other tensor as it is (no copy)."""
    return x.float() if x.dtype in HALF_DTYPES else x


def outside_autocast(fn: FnT) -> FnT:
    """Run fn with autocast off for the device type of its first tensor argument (the embeddings;
    a method's `self` is skipped)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        tensor = next((a for a in args if isinstance(a, torch.Tensor)), None)
        if tensor is None:
            return fn(*args, **kwargs)  # the function's own checks name the bad value
        with autocast_off(tensor.device):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
