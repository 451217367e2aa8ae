"""Optional kernel fusion with torch.compile, used where element-wise passes would dominate.

Compiled and eager versions compute the same numbers (up to float rounding); compilation costs
seconds on first use, so callers compile only large problems, and only where a compiler exists.
A compilation that fails anyway (a broken C++ toolchain, an inductor error) falls back to the eager
function with one warning: the numbers are the same, only slower.
"""

from __future__ import annotations

import functools
import importlib.util
import shutil
import warnings
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
        try:  # torch.compile itself refuses some platforms (e.g. Python versions Dynamo lacks)
            _CACHE[fn] = _with_eager_fallback(fn, torch.compile(fn, dynamic=True, fullgraph=True))
        except Exception as error:
            _warn_eager(fn, error)
            _CACHE[fn] = fn
    return _CACHE[fn]  # type: ignore[return-value]


def _warn_eager(fn: Callable, error: Exception) -> None:
    reason = " ".join(f"{type(error).__name__}: {error}".split())[:300]
    warnings.warn(
        f"torch.compile of {fn.__name__} failed, using the eager version ({reason})", RuntimeWarning, stacklevel=3
    )


def _with_eager_fallback(fn: Callable, compiled: Callable) -> Callable:
    """`compiled`, or `fn` from the first call whose compilation fails (then for good, with a warning).

    torch.compile compiles on the first call (and again on new shapes), so failures show there. The
    eager retry re-raises any error that is the function's own, so real bugs keep their traceback.
    """
    failed: list[str] = []

    @functools.wraps(fn)
    def call(*args, **kwargs):
        if not failed:
            try:
                return compiled(*args, **kwargs)
            except Exception as error:  # backend/compiler failures have no common type
                failed.append(type(error).__name__)
                _warn_eager(fn, error)
        return fn(*args, **kwargs)

    return call
