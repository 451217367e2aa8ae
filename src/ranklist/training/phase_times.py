"""Wall-clock seconds per phase of a run (summary.json's "time_s"): where a run's time went."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

# In the order a run passes through them. The pretrained baseline is embedded in the test's pass
# over the images: "baseline" is its model's building and its scoring, "test" the shared pass.
PHASES = ("setup", "train_steps", "validation", "checkpoints", "baseline", "test", "report")


class PhaseTimes:
    """Seconds accumulated per phase; `phase` times a block (it may be entered many times)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        if name not in PHASES:
            raise ValueError(f"unknown phase {name!r}; phases are {PHASES}")
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def get(self, name: str) -> float:
        return self.seconds.get(name, 0.0)

    def summary(self) -> dict[str, float]:
        """The phases that ran, in run order, in seconds to 0.1 s."""
        return {name: round(self.seconds[name], 1) for name in PHASES if name in self.seconds}
