"""Mirror-image twin classes by name, and benchmarks/mirror_twins.py's grouped Recall@1 against a brute-force count."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

from ranklist.data.mirror_names import mirror_name, mirror_twins


def test_mirror_names_swap_sides_and_drop_facing_right():
    assert mirror_name("left-facing fist") == "right-facing fist"
    assert mirror_name("black rightwards arrow") == "black leftwards arrow"
    assert mirror_name("woman walking facing right") == "woman walking"
    assert mirror_name("grinning face") is None and mirror_name("copyright sign") is None  # "right" only as a word


def test_twins_are_both_members_of_pairs_present():
    names = [
        "man walking",
        "man walking facing right",
        "left arrow",
        "right arrow",
        "up arrow",
        "leftwards hand",
        "woman running facing right",
    ]  # no "rightwards hand", no "woman running"
    assert mirror_twins(names) == {"man walking", "man walking facing right", "left arrow", "right arrow"}


def _script():
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "mirror_twins.py"
    spec = importlib.util.spec_from_file_location("mirror_twins_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_grouped_recall_matches_brute_force():
    names = ["left arrow", "right arrow", "cat", "dog"]
    gen = torch.Generator().manual_seed(0)
    labels = np.repeat(np.arange(4), 5)
    embedding = torch.randn(20, 8, generator=gen) + 2 * torch.eye(4, 8)[torch.from_numpy(labels)]
    report = _script().recall_at_1_by_group(embedding, labels, names)
    unit = embedding / embedding.norm(dim=1, keepdim=True)
    hits = []
    for i in range(20):  # the nearest other image, one query at a time
        best = max((j for j in range(20) if j != i), key=lambda j: float(unit[i] @ unit[j]))
        hits.append(labels[best] == labels[i])
    hits = np.array(hits)
    assert report["twin_queries"] == 10 and report["other_queries"] == 10
    assert report["all"] == round(hits.mean() * 100, 2)
    assert report["twin_classes"] == round(hits[:10].mean() * 100, 2) and report["other_classes"] == round(
        hits[10:].mean() * 100, 2
    )
