"""Concurrent requests share forwards: results equal the lone calls', an idle model adds no wait."""

import threading
import time

import numpy as np
import pytest
import torch

from ranklist.serving.coalescing import CoalescingEmbedder


class Recording:
    """An embedder that sums each image's pixels (a known answer per image) and records its forwards."""

    preprocessing = fingerprint = None
    runtime = "recording"

    def __init__(self, delay=0.0, fail_on=None):
        self.delay, self.fail_on, self.sizes, self.active, self.overlap = delay, fail_on, [], 0, False
        self.lock = threading.Lock()

    def embed(self, batch):
        with self.lock:
            self.active += 1
            self.overlap |= self.active > 1
        time.sleep(self.delay)
        with self.lock:
            self.active -= 1
            self.sizes.append(len(batch))
        if self.fail_on is not None and (batch == self.fail_on).all(dim=(1, 2, 3)).any():
            raise ValueError("bad image")
        return batch.sum(dim=(1, 2, 3)).numpy()[:, None].repeat(2, axis=1)


def images(value, n=1):
    return torch.full((n, 3, 2, 2), float(value))


def call_together(embedder, batches):
    results, errors = [None] * len(batches), [None] * len(batches)
    start = threading.Barrier(len(batches))

    def worker(i):
        start.wait()
        try:
            results[i] = embedder.embed(batches[i])
        except ValueError as error:
            errors[i] = error

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(batches))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results, errors


def test_a_lone_call_runs_at_once_with_its_own_batch():
    inner = Recording()
    out = CoalescingEmbedder(inner).embed(images(1, 3))
    assert inner.sizes == [3] and np.array_equal(out, np.full((3, 2), 12.0))


@pytest.mark.parametrize("repeat", range(5))
def test_concurrent_calls_share_forwards_and_get_their_own_rows(repeat):
    inner = Recording(delay=0.05)
    embedder = CoalescingEmbedder(inner, max_batch=8)
    batches = [images(v, 1 + v % 3) for v in range(12)]
    results, errors = call_together(embedder, batches)
    assert errors == [None] * 12 and not inner.overlap  # one forward at a time
    for v, out in enumerate(results):
        assert np.array_equal(out, np.full((1 + v % 3, 2), 12.0 * v))
    assert sum(inner.sizes) == sum(len(b) for b in batches) and max(inner.sizes) <= 8
    assert embedder.forwards == len(inner.sizes) < 12  # shared: fewer forwards than calls


def test_an_error_reaches_every_call_of_its_forward_and_the_next_still_runs():
    inner = Recording(delay=0.05, fail_on=images(7)[0])
    embedder = CoalescingEmbedder(inner, max_batch=64)
    results, errors = call_together(embedder, [images(v) for v in range(6)] + [images(7)])
    assert any(errors) and all(r is not None for r, e in zip(results, errors) if e is None)
    assert np.array_equal(embedder.embed(images(2)), np.full((1, 2), 24.0))


def test_max_batch_is_checked():
    with pytest.raises(ValueError, match="max_batch must be >= 1, got 0"):
        CoalescingEmbedder(Recording(), max_batch=0)
