"""The optional extra `ranklist[serve]`: export and serving import their packages through here,
so that a missing one is one clear line naming the extra, not an ImportError deep in a stack."""

from __future__ import annotations

import importlib
from types import ModuleType

from ranklist.errors import UserError

EXTRA = "serve"


class MissingExtraError(UserError):
    """An optional package is not installed."""


def require(module: str, purpose: str) -> ModuleType:
    """Import `module`, or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingExtraError(
            f"{purpose} needs the optional extra: pip install 'ranklist[{EXTRA}]' (cannot import {module}: {error})"
        ) from None
