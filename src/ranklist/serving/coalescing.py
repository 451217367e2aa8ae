"""Concurrent requests share forwards: whatever arrives while a forward runs goes into the next one.

One thread at a time runs the model (the leader). A request that finds the model idle runs its own
images at once (no added wait); requests that arrive meanwhile queue, and when the forward ends one
of them leads the next forward over everything queued (up to `max_batch` images), so eight waiting
single-image requests cost one batched forward instead of eight. Results go back to each request's
own thread; an error of a batched forward goes to every request in it.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import torch

from ranklist.serving.embedders import Embedder


@dataclass(eq=False)
class _Job:
    batch: torch.Tensor
    result: np.ndarray | None = None
    error: BaseException | None = None
    finished: bool = False

    def outcome(self) -> np.ndarray:
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


@dataclass(eq=False)
class CoalescingEmbedder:
    """An Embedder whose concurrent calls are merged into shared forwards of at most `max_batch` images."""

    inner: Embedder
    max_batch: int = 32
    forwards: int = 0  # forwards run (tests and benchmarks read it)
    _queue: deque[_Job] = field(default_factory=deque)
    _busy: bool = False
    _cond: threading.Condition = field(default_factory=threading.Condition)

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {self.max_batch}")
        self.preprocessing, self.fingerprint, self.runtime = (
            self.inner.preprocessing,
            self.inner.fingerprint,
            self.inner.runtime,
        )
        self.precision = getattr(self.inner, "precision", "fp32")

    def embed(self, batch: torch.Tensor) -> np.ndarray:
        job = _Job(batch)
        with self._cond:
            self._queue.append(job)
        while True:
            with self._cond:
                while self._busy and not job.finished:
                    self._cond.wait()
                if job.finished:
                    return job.outcome()
                self._busy = True
                taken = self._take()
            try:
                self._run(taken)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _take(self) -> list[_Job]:
        """The queued jobs, oldest first, up to max_batch images (always at least one job)."""
        taken = [self._queue.popleft()]
        size = len(taken[0].batch)
        while self._queue and size + len(self._queue[0].batch) <= self.max_batch:
            size += len(self._queue[0].batch)
            taken.append(self._queue.popleft())
        return taken

    def _run(self, jobs: list[_Job]) -> None:
        try:
            merged = jobs[0].batch if len(jobs) == 1 else torch.cat([job.batch for job in jobs])
            out = self.inner.embed(merged)
            self.forwards += 1
            starts = np.cumsum([0] + [len(job.batch) for job in jobs])
            for job, start, end in zip(jobs, starts[:-1], starts[1:]):
                job.result = out[start:end]
        except BaseException as error:  # every request of the forward hears of it
            for job in jobs:
                job.error = error
        finally:
            with self._cond:
                for job in jobs:
                    job.finished = True
