"""Make the next batches in a background thread while the caller computes on the current one.

Embedding a split is decode + transform + collate (Python, PIL, small tensor ops) followed by the
model's forward (large tensor ops, which release the GIL): one thread a few batches ahead overlaps
the two without worker processes. The batches and their order are exactly the iterable's.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
_ITEM, _END, _ERROR = range(3)


class Prefetcher(Generic[T]):
    """Iterates `iterable` in a daemon thread, at most `depth` items ahead; use as a context manager
    (or call close()) so that the thread stops even when the caller stops early or raises."""

    def __init__(self, iterable: Iterable[T], depth: int = 2) -> None:
        if depth < 1:
            raise ValueError(f"prefetch depth must be >= 1, got {depth}")
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, args=(iterable,), name="ranklist-prefetch", daemon=True)
        self._thread.start()

    def _put(self, entry: tuple[int, object]) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self, iterable: Iterable[T]) -> None:
        try:
            for item in iterable:
                if not self._put((_ITEM, item)):
                    return
            self._put((_END, None))
        except BaseException as error:  # handed to the consumer, raised there
            self._put((_ERROR, error))

    def __iter__(self) -> Iterator[T]:
        while True:
            kind, value = self._queue.get()
            if kind == _END:
                return
            if kind == _ERROR:
                raise value  # type: ignore[misc]
            yield value  # type: ignore[misc]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> Prefetcher[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
