import threading

import pytest

from ranklist.evaluation.prefetch import Prefetcher


def alive():
    return [t for t in threading.enumerate() if t.name == "ranklist-prefetch"]


def test_yields_every_item_in_order_and_stops():
    for depth in (1, 2, 5):
        with Prefetcher(range(50), depth=depth) as items:
            assert list(items) == list(range(50))
        assert alive() == []


def test_early_exit_and_producer_errors_stop_the_thread():
    for _ in range(10):
        with Prefetcher(iter(range(1000)), depth=2) as items:
            for item in items:
                if item == 3:
                    break
        assert alive() == []

    def failing():
        yield 1
        raise ValueError("bad item 2")

    with Prefetcher(failing()) as items, pytest.raises(ValueError, match="bad item 2"):
        list(items)
    assert alive() == []
    with pytest.raises(ValueError, match="prefetch depth must be >= 1, got 0"):
        Prefetcher([], depth=0)
