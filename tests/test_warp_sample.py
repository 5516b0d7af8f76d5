"""Sampling kernels on plain arrays: positions, edges, rounding."""

from __future__ import annotations

import numpy as np
import pytest

from pyramidd.warp.sample import (
    cubic_weights,
    inside,
    needed_rect,
    sample_bilinear,
    sample_cubic,
    sample_near,
)

W, H = 8, 6


def ramp() -> np.ndarray:
    """Value 10*x + 20 at column x (linear across, constant down), as 1 band."""
    xs = np.arange(W, dtype=np.float64)
    return np.broadcast_to((10 * xs + 20)[None, :, None], (H, W, 1)).astype(np.uint8)


def test_inside_is_half_open_with_gdal_epsilon() -> None:
    sx = np.array([0.0, -1e-12, 7.999, 8.0 - 1e-11, 8.0, np.nan])
    sy = np.full_like(sx, 1.0)
    assert inside(sx, sy, W, H).tolist() == [True, False, True, False, False, False]


def test_near_picks_the_containing_pixel() -> None:
    img = np.arange(W * H, dtype=np.uint8).reshape(H, W, 1)
    sx = np.array([0.0, 0.99, 1.0, 7.5, 3.0 - 1e-11])
    sy = np.array([0.0, 0.5, 5.99, 2.0, 1.2])
    vals = sample_near(img, 0, 0, sx, sy, W, H)[:, 0]
    assert vals.tolist() == [0, 0, 41, 23, 11]


def test_window_offset_is_honoured() -> None:
    img = np.arange(W * H, dtype=np.uint8).reshape(H, W, 1)
    sx, sy = np.array([3.5, 5.2]), np.array([2.5, 4.9])
    rect = needed_rect(sx, sy, "cubic", W, H)
    x0, y0, x1, y1 = rect
    window = img[y0:y1, x0:x1]
    for fn in (sample_near, sample_bilinear, sample_cubic):
        assert np.array_equal(fn(window, x0, y0, sx, sy, W, H), fn(img, 0, 0, sx, sy, W, H))


def test_bilinear_and_cubic_reproduce_a_linear_ramp_inside() -> None:
    img = ramp()
    sx = np.array([2.5, 3.0, 3.25, 4.75])
    sy = np.array([3.0, 2.2, 2.5, 3.5])
    # Pixel centres are at x + 0.5: value at position s is 10 * (s - 0.5) + 20.
    expect = np.floor(10 * (sx - 0.5) + 20 + 0.5)
    assert sample_bilinear(img, 0, 0, sx, sy, W, H)[:, 0].tolist() == expect.tolist()
    assert sample_cubic(img, 0, 0, sx, sy, W, H)[:, 0].tolist() == expect.tolist()


def test_bilinear_renormalises_at_the_edge() -> None:
    img = ramp()
    # Left of the first centre only column 0 exists: its value, not a blend with 0.
    assert sample_bilinear(img, 0, 0, np.array([0.2]), np.array([3.0]), W, H)[0, 0] == 20
    # Right of the last centre only column 7.
    assert sample_bilinear(img, 0, 0, np.array([7.9]), np.array([5.9]), W, H)[0, 0] == 90


def test_cubic_falls_back_to_bilinear_near_the_edge() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    sx, sy = np.array([1.2, 6.9, 3.3]), np.array([3.0, 3.0, 0.8])
    assert np.array_equal(
        sample_cubic(img, 0, 0, sx, sy, W, H), sample_bilinear(img, 0, 0, sx, sy, W, H)
    )


def test_cubic_overshoot_is_clamped() -> None:
    img = np.zeros((H, W, 1), np.uint8)
    img[:, 4:] = 255
    vals = sample_cubic(img, 0, 0, np.array([3.8, 4.7]), np.array([3.0, 3.0]), W, H)[:, 0]
    assert vals.min() >= 0 and vals.max() <= 255


@pytest.mark.parametrize("t", [0.0, 0.25, 0.5, 0.9])
def test_cubic_weights_sum_to_one_and_interpolate(t: float) -> None:
    w = cubic_weights(np.array(t))
    assert float(sum(w)) == pytest.approx(1.0)
    if t == 0.0:
        assert [float(v) for v in w] == [0.0, 1.0, 0.0, 0.0]


def test_needed_rect_is_clipped_and_covers_the_kernel() -> None:
    sx, sy = np.array([0.3, 4.6]), np.array([2.2, 5.5])
    assert needed_rect(sx, sy, "near", W, H) == (0, 2, 5, 6)
    assert needed_rect(sx, sy, "bilinear", W, H) == (0, 1, 6, 6)
    assert needed_rect(sx, sy, "cubic", W, H) == (0, 0, 7, 6)
    assert needed_rect(np.array([]), np.array([]), "near", W, H) is None
