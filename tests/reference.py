"""The plain reference the engine must agree with: whole image in numpy, level by level."""

from __future__ import annotations

import numpy as np

from pyramidd.grid import Grid, TileKey


def levels(image: np.ndarray, resampler, grid: Grid) -> dict[int, np.ndarray]:
    """Every level of the pyramid, each made from the whole level above."""
    if image.ndim == 2:
        image = image[:, :, None]
    out = {grid.top: image}
    s = resampler.support
    for level in range(grid.top, 0, -1):
        img = out[level]
        h, w = img.shape[:2]
        w2, h2 = (w + 1) // 2, (h + 1) // 2
        # Past the edge the image continues with copies of its edge pixels.
        block = np.pad(img, ((s, 2 * h2 - h + s), (s, 2 * w2 - w + s), (0, 0)), mode="edge")
        out[level - 1] = resampler.reduce(block)
    return out


def tiles(image: np.ndarray, resampler, grid: Grid) -> dict[TileKey, np.ndarray]:
    """Every tile the grid writes, cut from the reference levels."""
    lv = levels(image, resampler, grid)
    out = {}
    for level in grid.levels():
        for key in grid.keys(level):
            x0, y0, x1, y1 = grid.tile_rect(key)
            out[key] = lv[level][y0:y1, x0:x1]
    return out


class ArrayReader:
    """A region reader over an array in memory, counting the pixels it hands out."""

    def __init__(self, image: np.ndarray) -> None:
        self.image = image if image.ndim == 3 else image[:, :, None]
        self.pixels_read = 0

    def read_region(self, x: int, y: int, w: int, h: int) -> np.ndarray:
        assert 0 <= x and 0 <= y and x + w <= self.image.shape[1] and y + h <= self.image.shape[0]
        self.pixels_read += w * h
        return self.image[y : y + h, x : x + w]

    def close(self) -> None:
        pass
