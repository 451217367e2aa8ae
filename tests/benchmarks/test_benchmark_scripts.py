"""The throughput benchmarks run in their small forms (so they cannot rot) and print the JSON they promise."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.heavy  # the benchmark scripts run in subprocesses

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def run_script(name: str, *args: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / name), *args], capture_output=True, text=True, timeout=600, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_train_step_quick_on_small_cnn():
    report = run_script("train_step.py", "--quick", "--backbones", "small_cnn")
    assert report["benchmark"] == "train_step" and report["image_size"] == 32
    result = report["backbones"]["small_cnn"]
    assert set(result["split_s"]) == {"data", "forward", "loss_forward", "loss_backward", "model_backward", "optimizer"}
    assert result["images_per_s"] > 0 and abs(sum(result["split_share"].values()) - 1) < 0.01
    assert "contiguous" in result["options_x_recipe"] and "workers_2" in result["options_x_recipe"]
    assert "freeze_stem_3_blocks" not in result["options_x_recipe"]  # small_cnn has no freeze
    assert result["eval_forward"]["x_no_grad"]["no_grad"] == 1.0


def test_train_step_quick_layer_options_on_efficientnet_lite0():
    """The options that need EfficientNet-Lite: the package's layers, the stride-2 copy, unfolded
    norms, BN statistics frozen and the cached trunk (the demo recipe freezes 3 blocks and BN)."""
    report = run_script(
        "train_step.py",
        "--quick",
        "--backbones",
        "efficientnet_lite0",
        "--eval-steps",
        "0",
        "--variants",
        "package_layers",
        "stride2_zero_pad",
        "unfolded_norms",
        "freeze_bn",
    )
    options = report["backbones"]["efficientnet_lite0"]["options_x_recipe"]
    assert set(options) == {"package_layers", "stride2_zero_pad", "unfolded_norms", "freeze_bn_off"}
    assert all(ratio > 0 for ratio in options.values())


def test_train_step_data_path_quick():
    report = run_script("train_step.py", "--data-path", "--quick")
    assert report["benchmark"] == "train_step/data_path" and report["batches_per_epoch"] == 1 and report["workers"] == 2
    assert set(report["steps_per_s"]) == {"loader_per_epoch", "one_loader"} and all(
        v > 0 for v in report["steps_per_s"].values()
    )


def _gpu_check(*args: str) -> tuple[list[dict], dict]:
    """(each section's line, the whole report: the last line)."""
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "gpu_check.py"), *args], capture_output=True, text=True, timeout=600, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    return lines[:-1], lines[-1]


def test_gpu_check_cpu_fallback():
    sections, report = _gpu_check("--device", "cpu")
    assert [s["section"] for s in sections] == ["loss", "loss_compile", "train_step", "eval", "torchrun"]
    assert report["fallback"] is True and report["device"] == "cpu" and report["peak_under_limit"]
    assert [(row["n"], row["dtype"]) for row in report["loss"]["rows"]] == [
        (64, "float32"),
        (256, "float32"),
    ]  # what train_step feeds the loss
    assert all(row[g]["seconds"] > 0 for row in report["loss"]["rows"] for g in ("query", "full"))
    step = report["train_step"]
    assert {"recipe", "amp_bf16"} <= set(step) and all(
        step[v]["loss_finite"] and step[v]["parameters_finite"] for v in ("recipe", "amp_bf16")
    )
    assert (
        report["eval"]["views"] == ["L", "M", "H", "concat"]
        and report["eval"]["nmi_s"] >= 0
        and report["eval"]["embed_images"] == 20
    )
    assert "skipped" in report["torchrun"] and sections[-1]["skipped"] == report["torchrun"]["skipped"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without a GPU")
def test_gpu_check_refuses_cuda_without_a_gpu():
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "gpu_check.py"), "--device", "cuda"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (
        done.returncode == 1
        and "gpu_check: --device cuda but no CUDA device is usable here" in done.stderr
        and not done.stdout
    )


@pytest.mark.slow
def test_gpu_check_torchrun_section_with_gloo():
    """Two processes against one on the global batch, and `ranklist train` under torchrun (about 50 s here)."""
    _, report = _gpu_check("--device", "cpu", "--torchrun-cpu")
    two = report["torchrun"]["two_vs_one"]
    assert two["ok"] and two["processes_agree"] and two["max_relative_difference"] < 1e-4
    assert report["torchrun"]["ranklist_train"]["ok"] and report["torchrun"]["ranklist_train"]["iterations"] == 4


def test_embed_speed_small():
    report = run_script(
        "embed_speed.py",
        "--n",
        "24",
        "--rounds",
        "1",
        "model.backbone=small_cnn",
        "data.image_size=32",
        "eval.batch_size=8",
    )
    assert report["benchmark"] == "embed_speed" and report["x_forward"]["forward"] == 1.0
    assert {
        "paths/run_test_phase",
        "paths/evaluate_embed",
        "paths/index",
        "paths/serve_pytorch",
        "paths/serve_onnx",
    } <= set(report["images_per_s"])
    assert {"files/plain", "files/prefetch_thread", "memory/workers_2"} <= set(report["images_per_s"])


def test_eval_share_small_form(tmp_path):
    report = run_script(
        "eval_share.py",
        "--test-classes",
        "40",
        "--per-class",
        "3",
        "--train-classes",
        "40",
        "--iterations",
        "1",
        "--data-dir",
        str(tmp_path),
    )
    assert report["benchmark"] == "eval_share" and report["dataset"]["test_images"] == 120
    assert {"setup", "baseline", "train_steps", "validation", "test", "report"} <= set(report["time_s"])
    assert report["evaluation_x_training"] > 0 and report["forward_floor_s"] > 0
    assert (tmp_path / "40x4_40x3_64px" / "data.csv").is_file()  # written once, reused by the next run
