"""Optional kernel fusion with torch.compile, used where element-wise passes would dominate.

Compiled and eager versions compute the same numbers (up to float rounding); compilation costs
seconds on first use, so callers compile only large problems, and only where a compiler exists.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Callable
from typing import TypeVar

import torch

F = TypeVar("F", bound=Callable)
_CACHE: dict[Callable, Callable] = {}


def compiler_available(device: torch.device) -> bool:
    """torch.compile needs a C++ compiler on CPU and Triton on CUDA."""
    if device.type == "cpu":
        return any(shutil.which(name) for name in ("c++", "g++", "clang++"))
    if device.type == "cuda":
        return importlib.util.find_spec("triton") is not None
    return False


def maybe_compiled(fn: F, *, compile: bool | None, device: torch.device, size: int, min_size: int) -> F:
    """`fn` fused by torch.compile (compiled once per function), or `fn` itself.

    compile=None decides: compiled when a compiler is present and size >= min_size.
    """
    if compile is None:
        compile = size >= min_size and compiler_available(device)
    if not compile:
        return fn
    if fn not in _CACHE:
        _CACHE[fn] = torch.compile(fn, dynamic=True, fullgraph=True)
    return _CACHE[fn]  # type: ignore[return-value]
