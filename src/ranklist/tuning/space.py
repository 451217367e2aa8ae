"""A search space: dotted config keys, each a float (linear or log), an int or a categorical.

    optim.lr: {type: float, low: 1.0e-5, high: 1.0e-2, log: true}
    loss.params.margin: {type: float, low: 0.1, high: 1.2}
    data.classes_per_batch: {type: int, low: 16, high: 64, step: 8}
    loss.params.gradient: {type: categorical, choices: [query, full]}

A sampled point becomes dotted overrides of the recipe ("optim.lr=0.0003"). A categorical choice
that is a YAML list or mapping is written as a string (choices: ["[L,M,H]", "[H]"]).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

Value = bool | int | float | str | None
KINDS = ("float", "int", "categorical")


@dataclass(frozen=True)
class Param:
    """One dimension: `key` a dotted config key; bounds for float/int, `choices` for categorical."""

    key: str
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Value, ...] = ()

    def suggest(self, trial) -> Value:
        """The value an Optuna trial draws for this key."""
        if self.kind == "float":
            return trial.suggest_float(self.key, self.low, self.high, log=self.log, step=self.step)
        if self.kind == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        return trial.suggest_categorical(self.key, list(self.choices))

    def contains(self, value: Value) -> bool:
        """Whether this dimension can take `value` (inside the bounds and on the step, or a choice)."""
        if self.kind == "categorical":
            return any(type(choice) is type(value) and choice == value for choice in self.choices)
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or (self.kind == "int" and value != int(value))
        ):
            return False
        if not self.low <= value <= self.high:
            return False
        return self.step is None or math.isclose((value - self.low) / self.step, round((value - self.low) / self.step))

    def corners(self) -> list[Value]:
        """Values that test the key against a recipe: the bounds, or every choice."""
        if self.kind == "categorical":
            return list(self.choices)
        return [int(self.low), int(self.high)] if self.kind == "int" else [self.low, self.high]


@dataclass(frozen=True)
class Space:
    """A search space: the parameters read from a space YAML file."""

    path: str
    params: tuple[Param, ...]

    def keys(self) -> list[str]:
        return [p.key for p in self.params]


OPEN_MAPPINGS = ("loss.params.",)  # config mappings whose own keys may hold a dot (a miner's: miner.epsilon)


def _target(key: str) -> str:
    """The key as the override grammar reads it: loss.params.miner.epsilon -> loss.params[miner.epsilon]."""
    for prefix in OPEN_MAPPINGS:
        rest = key[len(prefix) :]
        if key.startswith(prefix) and "." in rest:
            return f"{prefix[:-1]}[{rest}]"
    return key


def override(key: str, value: Value) -> str:
    """A dotted override the config loader reads back as `value`."""
    key = _target(key)
    if value is None:
        return f"{key}=null"
    if isinstance(value, bool):
        return f"{key}={'true' if value else 'false'}"
    return f"{key}={value!r}" if isinstance(value, float) else f"{key}={value}"


def overrides(values: dict[str, Value]) -> list[str]:
    """Dotted overrides (key=value) setting the chosen values."""
    return [override(key, value) for key, value in values.items()]


def load_space(path: str | Path) -> Space:
    """The space in a YAML file; a bad key or value is a ValueError naming it and the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"search space file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ValueError(f"search space {path} is not valid YAML: {' '.join(str(error).split())}") from None
    if not isinstance(data, dict) or not data:
        raise ValueError(
            f"search space {path} must be a mapping of dotted config keys to ranges, got {type(data).__name__}"
        )
    return Space(str(path), tuple(_param(path, str(key), spec) for key, spec in data.items()))


def _param(path: Path, key: str, spec: Any) -> Param:
    def bad(message: str) -> ValueError:
        return ValueError(f"search space {path}: {key}: {message}")

    if "." not in key or any(not part for part in key.split(".")):
        raise bad("the key must be a dotted config key such as optim.lr or loss.params.margin")
    if not isinstance(spec, dict):
        raise bad(f"expected a mapping such as {{type: float, low: 0.1, high: 1.0}}, got {spec!r}")
    kind = spec.get("type")
    if kind not in KINDS:
        raise bad(f"type must be one of {list(KINDS)}, got {kind!r}")
    allowed = {"type", "choices"} if kind == "categorical" else {"type", "low", "high", "log", "step"}
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise bad(f"unknown fields {unknown} for type {kind}; valid: {sorted(allowed)}")
    if kind == "categorical":
        return Param(key, kind, choices=_choices(spec.get("choices"), bad))
    return _numeric(key, kind, spec, bad)


def _choices(choices: Any, bad) -> tuple[Value, ...]:
    if not isinstance(choices, list) or not choices:
        raise bad(f"choices must be a non-empty list, got {choices!r}")
    for choice in choices:
        if not (choice is None or isinstance(choice, (bool, int, float, str))):
            raise bad(
                f'choice {choice!r} is a {type(choice).__name__}; write lists and mappings as strings, e.g. "[L,M,H]"'
            )
    if len(set(map(repr, choices))) != len(choices):
        raise bad(f"choices repeat a value: {choices}")
    return tuple(choices)


def _number(spec: dict, field: str, kind: str, bad) -> float | None:
    """A bound as a number; YAML 1.1 reads 1e-5 as a string, so numeric strings are accepted."""
    value = spec.get(field)
    if value is None or isinstance(value, bool):
        if field in ("low", "high"):
            raise bad(f"{field} must be a number, got {value!r}")
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise bad(f"{field} must be a number, got {value!r}") from None
    if not math.isfinite(number) or (kind == "int" and number != int(number)):
        raise bad(f"{field} must be a finite {'integer' if kind == 'int' else 'number'}, got {value!r}")
    return number


def _numeric(key: str, kind: str, spec: dict, bad) -> Param:
    low, high, step = (_number(spec, field, kind, bad) for field in ("low", "high", "step"))
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise bad(f"log must be true or false, got {log!r}")
    if not low < high:
        raise bad(f"low {low:g} must be < high {high:g}")
    if log and low <= 0:
        raise bad(f"a log range needs low > 0, got {low:g}")
    if step is not None and (step <= 0 or log):
        raise bad(f"step must be > 0 and cannot go with log, got step {step:g}, log {log}")
    return Param(key, kind, low, high, log, step)
