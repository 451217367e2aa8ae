"""The user's errors, and how one is said in one line.

A user error is something the user can fix: a bad config value, a missing file, an unusable
checkpoint. Library code raises ValueError / FileNotFoundError (or UserError where neither fits);
the command line prints one line for those and keeps the traceback of everything else.
"""

from __future__ import annotations

import importlib
from types import ModuleType

DATALOADER_MARK = "Original Traceback"


class UserError(ValueError):
    """A problem the user can fix; the message names the bad value."""


class TrainingDiverged(UserError):
    """The loss or the embeddings became non-finite: a recipe problem (learning rate), not a bug."""


class MissingExtraError(UserError):
    """An optional package is not installed."""


def require(module: str, purpose: str, extra: str = "serve") -> ModuleType:
    """Import `module`, or say in one line which optional extra installs it (not an ImportError deep in a stack)."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingExtraError(
            f"{purpose} needs the optional extra: pip install 'ranklist[{extra}]' (cannot import {module}: {error})"
        ) from None


def one_line(error: BaseException) -> str:
    """The error's message on one line, keeping what matters.

    A DataLoader worker's error carries the worker's traceback: its last line is the original
    error (with the file it names). Other multi-line messages (a state-dict mismatch lists every
    key) are joined, not cut.
    """
    text = str(error).strip()
    if not text:
        return type(error).__name__
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if DATALOADER_MARK in text:
        return lines[-1]
    if isinstance(error, OSError) and error.filename and error.strerror:
        return f"{error.strerror}: {error.filename}"
    return " ".join(lines)
