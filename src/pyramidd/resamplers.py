"""Built-in resamplers: how four pixels of one level become one of the level below.

- ``box``: the mean of the 2x2 block, rounded as ``(a+b+c+d+2)//4`` like libvips.
- ``nearest``: the top-left pixel of the block; keeps label maps and palettes exact.
- ``smooth``: a separable [1, 3, 3, 1]/8 filter over a 4x4 window (the tent
  filter of a 2x reduction): less aliasing than box on fine patterns.

All three are pixel-local, so a tile gets the same pixels whichever builder makes
it; see :class:`pyramidd.formats.Resampler`.
"""

from __future__ import annotations

import numpy as np


class Box:
    """2x2 mean, rounded half up (as ``vips dzsave`` shrinks)."""

    name = "box"
    support = 0

    def reduce(self, block: np.ndarray) -> np.ndarray:
        # uint16 holds the sum of four bytes; the adds happen in place to stay cheap.
        acc = block[0::2, 0::2].astype(np.uint16)
        acc += block[1::2, 0::2]
        acc += block[0::2, 1::2]
        acc += block[1::2, 1::2]
        acc += 2
        acc >>= 2
        return acc.astype(np.uint8)


class Nearest:
    """Top-left pixel of each 2x2 block: no new values, for label maps."""

    name = "nearest"
    support = 0

    def reduce(self, block: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(block[0::2, 0::2])


class Smooth:
    """Separable [1, 3, 3, 1]/8 tent filter over a 4x4 window, rounded half up."""

    name = "smooth"
    support = 1

    def reduce(self, block: np.ndarray) -> np.ndarray:
        b = block.astype(np.uint32)
        # Output pixel i reads input columns 2i-1 .. 2i+2; with the one-pixel margin
        # those are columns 2i .. 2i+3 of ``block``.
        cols = b[:, 0:-3:2] + 3 * b[:, 1:-2:2] + 3 * b[:, 2:-1:2] + b[:, 3::2]
        rows = cols[0:-3:2] + 3 * cols[1:-2:2] + 3 * cols[2:-1:2] + cols[3::2]
        return ((rows + 32) >> 6).astype(np.uint8)


BUILTINS = (Box(), Nearest(), Smooth())
