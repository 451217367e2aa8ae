"""The figures benchmarks/serve_load.py derives from its measurements (issue 27's two targets)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "serve_load.py"


@pytest.fixture(scope="module")
def serve_load():
    spec = importlib.util.spec_from_file_location("serve_load", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def row(rps: float, p50: float) -> dict:
    return {"requests_per_s": rps, "p50_ms": p50, "p99_ms": 2 * p50, "errors": 0}


def test_medians_over_rounds_and_errors_summed(serve_load):
    rounds = [row(10, 30), {**row(30, 10), "errors": 2}, row(20, 20)]
    assert serve_load.median_row(rounds) == {
        "requests_per_s": 20.0,
        "p50_ms": 20.0,
        "p99_ms": 40.0,
        "errors": 2,
        "rounds": rounds,
    }


def test_targets_are_8_clients_over_1_and_the_lone_p50_shared_over_unshared(serve_load):
    results = {
        "flat/pytorch/max_batch_1": {"1": row(40, 20), "8": row(36, 200)},
        "flat/pytorch/max_batch_32": {"1": row(38, 22), "8": row(76, 100)},
    }
    assert serve_load.targets(results) == {
        "flat/pytorch/max_batch_1": {"requests_per_s_8_over_1_client": 0.9},
        "flat/pytorch/max_batch_32": {"requests_per_s_8_over_1_client": 2.0, "lone_p50_over_unshared": 1.1},
    }


def test_the_sharing_overhead_is_measured_on_both_paths(serve_load):
    figures = serve_load.sharing_overhead_us(calls=200)
    assert set(figures) == {"direct_us", "shared_us"} and all(value >= 0 for value in figures.values())
