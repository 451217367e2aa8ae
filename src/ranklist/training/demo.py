"""The main job: RLL-(L,M,H) on the offline emoji benchmark with an ImageNet-pretrained
EfficientNet-Lite0, within 10 minutes on 2 CPU cores (configs/demo.yaml is the same recipe)."""

from __future__ import annotations

from pathlib import Path

from ranklist.training.config import load_config

DEMO_CONFIG = Path(__file__).with_name("demo.yaml")


def demo_config(overrides: list[str] | None = None):
    """The demo recipe (demo.yaml), with dotted `overrides` applied."""
    return load_config(DEMO_CONFIG, overrides)
