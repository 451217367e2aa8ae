"""Classes whose mirror image is another class, found by their names ("left" <-> "right",
"X facing right" <-> "X"): where such pairs exist, horizontal-flip augmentation teaches the model
that two classes are one (the emoji benchmark has 22 pairs: docs/results.md, Fourth round)."""

from __future__ import annotations

from collections.abc import Iterable

_SWAPS = {"left": "right", "leftwards": "rightwards", "left-pointing": "right-pointing", "left-facing": "right-facing"}
_SWAPS |= {right: left for left, right in _SWAPS.items()}
_FACING = " facing right"


def mirror_name(name: str) -> str | None:
    """The name of `name`'s mirror image by the naming rules above, or None where the name has no side."""
    if name.endswith(_FACING):
        return name[: -len(_FACING)]
    words = name.split()
    swapped = [_SWAPS.get(word, word) for word in words]
    return " ".join(swapped) if swapped != words else None


def mirror_twins(names: Iterable[str]) -> set[str]:
    """The names among `names` whose mirror image is also among them (both of each pair)."""
    present = set(names)
    twins = {name for name in present if mirror_name(name) in present}
    twins |= {mirror_name(name) for name in twins}  # "X" is the twin of "X facing right"
    return twins
