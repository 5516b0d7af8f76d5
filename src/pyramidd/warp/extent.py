"""The output grid of a warp: which map rectangle the output image covers, at what size.

Output pixel ``(i, j)`` has its centre at map
``(min_x + (i + 0.5) * res_x, max_y - (j + 0.5) * res_y)``: north up, row 0 at the
top, as ``gdalwarp -te min_x min_y max_x max_y -ts width height`` lays it out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .model import PolynomialModel


@dataclass(frozen=True)
class OutputGrid:
    """A north-up grid of ``width`` x ``height`` pixels over a map rectangle."""

    min_x: float
    min_y: float
    max_x: float
    max_y: float
    width: int
    height: int

    @property
    def res_x(self) -> float:
        """Map units per output pixel, across."""
        return (self.max_x - self.min_x) / self.width

    @property
    def res_y(self) -> float:
        """Map units per output pixel, down (positive)."""
        return (self.max_y - self.min_y) / self.height

    def xs(self, col0: int, cols: int) -> np.ndarray:
        """Map x of the centres of columns ``col0 .. col0 + cols - 1``."""
        return self.min_x + (np.arange(col0, col0 + cols, dtype=np.float64) + 0.5) * self.res_x

    def ys(self, row0: int, rows: int) -> np.ndarray:
        """Map y of the centres of rows ``row0 .. row0 + rows - 1``."""
        return self.max_y + (np.arange(row0, row0 + rows, dtype=np.float64) + 0.5) * -self.res_y

    def gdalwarp_args(self) -> list[str]:
        """``-te``/``-ts`` arguments that make ``gdalwarp`` use this same grid."""
        return [
            "-te", *(repr(float(v)) for v in (self.min_x, self.min_y, self.max_x, self.max_y)),
            "-ts", str(self.width), str(self.height),
        ]


def source_outline(width: int, height: int, steps: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Points along the border of a ``width`` x ``height`` input (pixel corners)."""
    t = np.linspace(0.0, 1.0, steps + 1)
    xs = np.concatenate([t * width, np.full_like(t, width), t * width, np.zeros_like(t)])
    ys = np.concatenate([np.zeros_like(t), t * height, np.full_like(t, height), t * height])
    return xs, ys


def output_grid(
    model: PolynomialModel, width: int, height: int, size: tuple[int, int] | None = None
) -> OutputGrid:
    """The grid covering the forward-transformed input bounds.

    Without ``size`` the pixels are square and about as large as input pixels: the
    diagonal of the output extent in pixels equals the input's diagonal, as
    ``gdalwarp`` suggests an output size. The border is sampled densely because a
    polynomial of order 2 or 3 bends it.
    """
    px, py = source_outline(width, height)
    mx, my = model.to_map(px, py)
    min_x, max_x = float(mx.min()), float(mx.max())
    min_y, max_y = float(my.min()), float(my.max())
    if not (math.isfinite(max_x - min_x) and math.isfinite(max_y - min_y)):
        raise ValueError("the model sends the image border to infinity")
    if size is not None:
        return OutputGrid(min_x, min_y, max_x, max_y, int(size[0]), int(size[1]))
    res = math.hypot(max_x - min_x, max_y - min_y) / math.hypot(width, height)
    if res == 0.0:
        raise ValueError("the model maps the whole image to one point")
    cols = max(1, int((max_x - min_x) / res + 0.5))
    rows = max(1, int((max_y - min_y) / res + 0.5))
    return OutputGrid(min_x, max_y - rows * res, min_x + cols * res, max_y, cols, rows)
