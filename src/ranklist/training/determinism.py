"""train.deterministic: the switches that make a CUDA run repeat (and resume) bit for bit.

On the CPU every kernel ranklist uses is deterministic already; on CUDA some are not (atomic adds
in convolution backward and in index/scatter ops, cuDNN's autotuned algorithm choice, cuBLAS's
split-K workspaces). The switches are process-wide and stay on once set.
"""

from __future__ import annotations

import os

import torch

# cuBLAS is deterministic only with one of these workspace settings (NVIDIA's cuBLAS docs).
DETERMINISTIC_CUBLAS = (":4096:8", ":16:8")


def make_deterministic() -> None:
    """Deterministic algorithms only (an op without one stops the run with torch's error naming it),
    cuDNN without autotuning, and cuBLAS's fixed workspace, set before the first cuBLAS call."""
    workspace = os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", DETERMINISTIC_CUBLAS[0])
    if workspace not in DETERMINISTIC_CUBLAS:
        raise ValueError(
            f"train.deterministic needs CUBLAS_WORKSPACE_CONFIG in {list(DETERMINISTIC_CUBLAS)}, got {workspace!r}"
        )
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
