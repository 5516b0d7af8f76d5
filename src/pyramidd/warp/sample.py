"""Sampling kernels: the value of the input at fractional positions.

Positions are input pixel/line coordinates with ``(0, 0)`` the top-left corner of
the top-left pixel, so pixel ``i`` covers ``[i, i+1)`` and has its centre at
``i + 0.5``. The rules follow ``gdalwarp`` with ``XSCALE=1 YSCALE=1`` on an
input without masks, so the same positions give the same bytes:

- a position is *inside* when ``0 <= x`` and ``floor(x + 1e-10) < width`` (same for
  y); outside positions are not sampled (they become transparent / background);
- ``near``: the pixel containing the position;
- ``bilinear``: the four pixels around it, weighted by distance to their centres;
  at the image edge the weights of the pixels that exist are renormalised;
- ``cubic``: Catmull-Rom cubic convolution (a = -0.5) over 4x4 pixels; where those
  16 pixels are not all inside the image, bilinear is used instead;
- results are rounded half up and clamped to 0..255.

Each function takes a *window*: the input pixels of the rectangle
``[x0, x0 + w) x [y0, y0 + h)``, which must hold every in-image pixel the kernel
reads (see :func:`needed_rect`).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

KERNELS = ("near", "bilinear", "cubic")

#: How far a kernel reaches before / after the pixel containing the position.
REACH = {"near": (0, 0), "bilinear": (1, 1), "cubic": (2, 2)}


def inside(sx: np.ndarray, sy: np.ndarray, width: int, height: int) -> np.ndarray:
    """Mask of positions that fall in the input image (NaN is outside)."""
    # floor(v) < n  <=>  v < n for an integer n, which saves two passes.
    with np.errstate(invalid="ignore"):
        mask = sx >= 0.0
        mask &= sy >= 0.0
        mask &= sx + 1e-10 < width
        mask &= sy + 1e-10 < height
        return mask


def needed_rect(
    sx: np.ndarray, sy: np.ndarray, kernel: str, width: int, height: int
) -> tuple[int, int, int, int] | None:
    """Input rectangle ``(x0, y0, x1, y1)`` a kernel reads for inside positions ``sx, sy``."""
    if sx.size == 0:
        return None
    before, after = REACH[kernel]
    x0 = int(np.floor(sx.min() + 1e-10)) - before
    x1 = int(np.floor(sx.max() + 1e-10)) + after + 1
    y0 = int(np.floor(sy.min() + 1e-10)) - before
    y1 = int(np.floor(sy.max() + 1e-10)) + after + 1
    return max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)


def _round(v: np.ndarray) -> np.ndarray:
    # Half up then truncate, on values already known to be >= 0.
    return np.minimum(v + 0.5, 255.0).astype(np.uint8)


def sample_near(
    window: np.ndarray, x0: int, y0: int, sx: np.ndarray, sy: np.ndarray, width: int, height: int
) -> np.ndarray:
    """Nearest pixel values ``(n, bands)`` at inside positions."""
    # Inside positions are >= 0, where truncation is floor.
    ix = (sx + 1e-10).astype(np.intp)
    iy = (sy + 1e-10).astype(np.intp)
    ix -= x0
    iy -= y0
    iy *= window.shape[1]
    iy += ix
    bands = window.shape[2]
    window = np.ascontiguousarray(window)
    if bands in (2, 4):
        # Gather whole pixels as one 16/32-bit word each: far cheaper than rows of bytes.
        word = np.uint16 if bands == 2 else np.uint32
        return window.view(word).reshape(-1).take(iy).view(np.uint8).reshape(-1, bands)
    return window.reshape(-1, bands).take(iy, axis=0)


def _bilinear(
    window: np.ndarray, x0: int, y0: int, sx: np.ndarray, sy: np.ndarray, width: int, height: int
) -> np.ndarray:
    """Bilinear values as float64 ``(n, bands)``, edge weights renormalised."""
    fx = np.floor(sx - 0.5)
    fy = np.floor(sy - 0.5)
    rx = (1.5 - (sx - fx))[:, None]
    ry = (1.5 - (sy - fy))[:, None]
    ix = fx.astype(np.intp)
    iy = fy.astype(np.intp)
    wh, ww = window.shape[:2]
    out = np.empty((sx.size, window.shape[2]), dtype=np.float64)
    core = (ix >= 0) & (ix + 1 < width) & (iy >= 0) & (iy + 1 < height)
    if core.any():
        cx = ix[core] - x0
        cy = iy[core] - y0
        a = window[cy, cx].astype(np.float64)
        b = window[cy, cx + 1]
        c = window[cy + 1, cx]
        d = window[cy + 1, cx + 1]
        px, py = rx[core], ry[core]
        out[core] = (a * px + b * (1.0 - px)) * py + (c * px + d * (1.0 - px)) * (1.0 - py)
    edge = ~core
    if edge.any():
        ex, ey = ix[edge], iy[edge]
        px, py = rx[edge], ry[edge]
        acc = np.zeros((ex.size, window.shape[2]), dtype=np.float64)
        div = np.zeros((ex.size, 1), dtype=np.float64)
        # Same corner order as the reference so sums round the same way.
        for dx, dy, wgt in (
            (0, 0, px * py),
            (1, 0, (1.0 - px) * py),
            (1, 1, (1.0 - px) * (1.0 - py)),
            (0, 1, px * (1.0 - py)),
        ):
            qx, qy = ex + dx, ey + dy
            ok = ((qx >= 0) & (qx < width) & (qy >= 0) & (qy < height))[:, None]
            vals = window[np.clip(qy - y0, 0, wh - 1), np.clip(qx - x0, 0, ww - 1)]
            w = np.where(ok, wgt, 0.0)
            div += w
            acc += vals * w
        safe = np.where(div < 1e-5, 1.0, div)
        val = np.where(div == 1.0, acc, acc / safe)
        out[edge] = np.where(div < 1e-5, 0.0, val)
    return out


def sample_bilinear(
    window: np.ndarray, x0: int, y0: int, sx: np.ndarray, sy: np.ndarray, width: int, height: int
) -> np.ndarray:
    """Bilinear pixel values ``(n, bands)`` at inside positions."""
    return _round(_bilinear(window, x0, y0, sx, sy, width, height))


def cubic_weights(t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Catmull-Rom weights of the pixels at offsets -1, 0, 1, 2 for a fraction ``t``."""
    half = 0.5 * t
    half2 = half * t
    three = 3.0 * t
    return (
        half * (-1.0 + t * (2.0 - t)),
        1.0 + half2 * (-5.0 + three),
        half * (1.0 + t * (4.0 - three)),
        half2 * (-1.0 + t),
    )


def sample_cubic(
    window: np.ndarray, x0: int, y0: int, sx: np.ndarray, sy: np.ndarray, width: int, height: int
) -> np.ndarray:
    """Cubic convolution values ``(n, bands)``; bilinear where the 4x4 leaves the image."""
    fx = np.floor(sx - 0.5)
    fy = np.floor(sy - 0.5)
    ix = fx.astype(np.intp)
    iy = fy.astype(np.intp)
    out = np.empty((sx.size, window.shape[2]), dtype=np.uint8)
    core = (ix >= 1) & (ix + 2 < width) & (iy >= 1) & (iy + 2 < height)
    if core.any():
        tx = (sx[core] - 0.5 - fx[core])[:, None]
        ty = (sy[core] - 0.5 - fy[core])[:, None]
        wx = cubic_weights(tx)
        cx = ix[core] - x0
        cy = iy[core] - y0
        rows = []
        for dy in (-1, 0, 1, 2):
            r = cy + dy
            acc = wx[0] * window[r, cx - 1]
            acc = acc + wx[1] * window[r, cx]
            acc = acc + wx[2] * window[r, cx + 1]
            acc = acc + wx[3] * window[r, cx + 2]
            rows.append(acc)
        f0, f1, f2, f3 = rows
        ty2 = ty * ty
        ty3 = ty2 * ty
        v = f1 + 0.5 * (
            ty * (f2 - f0) + ty2 * (2.0 * f0 - 5.0 * f1 + 4.0 * f2 - f3) + ty3 * (3.0 * (f1 - f2) + f3 - f0)
        )
        out[core] = _round(np.maximum(v, 0.0))
    edge = ~core
    if edge.any():
        out[edge] = _round(_bilinear(window, x0, y0, sx[edge], sy[edge], width, height))
    return out


Sampler = Callable[[np.ndarray, int, int, np.ndarray, np.ndarray, int, int], np.ndarray]

SAMPLERS: dict[str, Sampler] = {
    "near": sample_near,
    "bilinear": sample_bilinear,
    "cubic": sample_cubic,
}
