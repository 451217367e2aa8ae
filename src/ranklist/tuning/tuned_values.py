"""What tuning changed: each searched key's tuned value beside the value the recipe had before tuning
(for a loss parameter, the loss's own default or preset: the paper's value where the loss has one)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ranklist.losses.registry import loss_params, loss_spec
from ranklist.training.config import RunConfig, load_config

LOSS_PARAMS = "loss.params."


def untuned_value(config: RunConfig, key: str) -> Any:
    """The value of dotted `key` in the untuned recipe; a loss parameter not set there is the loss's
    default (its miner's for "miner.*"), None when the loss class keeps it as its own default."""
    if key.startswith(LOSS_PARAMS):
        name = key[len(LOSS_PARAMS) :]
        resolved = loss_params(config.loss.name, config.loss.preset, dict(config.loss.params))
        if name.startswith("miner."):
            return resolved.get(name, loss_spec(config.loss.name).miner_defaults.get(name[len("miner.") :]))
        return resolved.get(name)
    value: Any = config
    for part in key.split("."):
        value = getattr(value, part)
    return value


def tuned_values(folder: Path) -> dict[str, dict[str, Any]]:
    """{key: {"tuned": best trial's value, "untuned": the recipe's}} of the study in `folder` (its tune.json);
    empty for a folder holding only a best.yaml written by hand (an untuned reference: nothing was tuned)."""
    if not (folder / "tune.json").is_file():
        return {}
    record = json.loads((folder / "tune.json").read_text())
    best, settings = record.get("best"), record["settings"]
    if not best:
        raise ValueError(f"{folder / 'tune.json'} has no completed trial yet")
    config = load_config(settings["recipe"], settings["overrides"])
    return {key: {"tuned": value, "untuned": untuned_value(config, key)} for key, value in best["params"].items()}
