"""The bounded piece cache and the thrash detector, over plain arrays."""

from __future__ import annotations

import numpy as np

from pyramidd.warp.cache import PieceCache, ThrashDetector
from pyramidd.warp.inputs import ArrayPieces


def image(h: int = 50, w: int = 70) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_window_equals_the_array_slice_wherever_it_falls() -> None:
    img = image()
    cache = PieceCache(ArrayPieces(img, 8, 16), capacity=1 << 20)
    for rect in [(0, 0, 70, 50), (3, 5, 4, 6), (15, 7, 33, 25), (60, 40, 70, 50), (16, 8, 32, 16)]:
        x0, y0, x1, y1 = rect
        assert np.array_equal(cache.window(*rect), img[y0:y1, x0:x1])


def test_capacity_bounds_the_bytes_held_and_lru_keeps_recent_pieces() -> None:
    img = image()
    piece_bytes = 8 * 16 * 3
    cache = PieceCache(ArrayPieces(img, 8, 16), capacity=3 * piece_bytes)
    for key in [(0, 0), (0, 1), (0, 2), (0, 0), (1, 0)]:
        cache.get(*key)
        assert cache.size_bytes <= 3 * piece_bytes
    c = cache.counters
    assert (c.reads, c.hits, c.evictions) == (4, 1, 1)
    # (0, 1) was least recently used, so it went; (0, 0) was touched and stayed.
    cache.get(0, 0)
    assert cache.counters.hits == 2
    cache.get(0, 1)
    assert cache.counters.reads == 5


def test_line_reads_count_rows_of_each_piece_read() -> None:
    img = image()
    cache = PieceCache(ArrayPieces(img, 8, 16), capacity=1 << 20)
    cache.window(0, 0, 70, 9)  # two strips of pieces, 5 pieces across
    assert cache.counters.reads == 10
    assert cache.counters.line_reads == 5 * 8 + 5 * 8
    assert cache.counters.bytes_decoded == 70 * 16 * 3


def test_a_piece_larger_than_the_budget_is_still_held_alone() -> None:
    cache = PieceCache(ArrayPieces(image(), 8, 16), capacity=10)
    cache.get(0, 0)
    cache.get(0, 1)
    assert cache.capacity_pieces == 1
    assert len(cache._pieces) == 1


def test_detector_waits_for_a_full_window() -> None:
    d = ThrashDetector(window=1000, threshold=0.2)
    assert d.add(100, 90) is False  # ratio 0.9 but only 100 pixels seen
    assert d.add(899, 0) is False
    assert d.add(1, 0) is False  # 1000 pixels, 90 reads: 0.09
    assert d.last_ratio == 0.09


def test_detector_trips_on_sustained_rereading_and_restarts() -> None:
    d = ThrashDetector(window=1000, threshold=0.2)
    tripped = [d.add(100, 60) for _ in range(10)]
    assert tripped == [False] * 9 + [True]
    assert d.ratio == 0.0  # restarted to judge the next block shape afresh


def test_detector_rolls_old_steps_out() -> None:
    d = ThrashDetector(window=1000, threshold=0.2)
    d.add(1000, 1000)  # a cold start burst...
    d.reset()
    for _ in range(30):  # ... forgotten; a healthy stream stays healthy
        assert d.add(100, 2) is False
    assert d.ratio == 0.02


def test_detector_judges_early_when_reads_exceed_what_a_warm_up_needs() -> None:
    d = ThrashDetector(window=10_000, threshold=0.2, min_reads=500)
    assert d.add(300, 300) is False
    assert d.add(300, 300) is True  # 600 reads in 600 pixels: no need to wait
