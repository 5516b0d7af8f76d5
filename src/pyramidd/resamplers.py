"""Built-in resamplers: how four pixels of one level become one of the level below.

- ``box``: the mean of the 2x2 block, rounded as ``(a+b+c+d+2)//4`` like libvips.
- ``nearest``: the top-left pixel of the block; keeps label maps and palettes exact.
- ``smooth``: a separable [1, 3, 3, 1]/8 filter over a 4x4 window (the tent
  filter of a 2x reduction): less aliasing than box on fine patterns.

Images with two or four bands have alpha in the last band. ``box`` and ``smooth``
average their colours weighted by alpha (premultiplied), as libvips does, so the
colour of invisible pixels never bleeds into visible ones; a fully transparent
result has colour 0. ``box`` then truncates colour and alpha, ``sum(c*a) // sum(a)``
and ``sum(a) // 4``, because libvips does (its premultiplied path is floating point,
cast down): rounding instead drifts a level's worth of half-units per level from
``vips dzsave``. ``smooth`` rounds half up.

All three are pixel-local, so a tile gets the same pixels whichever builder makes
it; see :class:`pyramidd.formats.Resampler`.
"""

from __future__ import annotations

import functools
from types import ModuleType

import numpy as np


def has_alpha(block: np.ndarray) -> bool:
    """LA and RGBA carry alpha in the last band."""
    return block.shape[2] in (2, 4)


def _weighted(
    sums: np.ndarray, colour_alpha_sums: np.ndarray, total: int, *, round_half_up: bool
) -> np.ndarray:
    """Premultiplied result from sums of alpha (``sums[..., -1:]``) and of colour*alpha."""
    alpha = sums[..., -1:]
    half = alpha // 2 if round_half_up else 0
    colour = (colour_alpha_sums + half) // np.maximum(alpha, 1)
    out = np.empty(sums.shape, np.uint8)
    out[..., :-1] = np.where(alpha > 0, colour, 0)
    out[..., -1:] = (alpha + (total // 2 if round_half_up else 0)) // total
    return out


@functools.cache
def opencv() -> ModuleType:
    """OpenCV, imported at the first reduction (a coordinator never reduces), with its
    thread pool off: each render worker is one thread of a build."""
    import cv2

    cv2.setNumThreads(0)
    return cv2


class Box:
    """2x2 mean as ``vips dzsave`` shrinks: rounded half up, or alpha-weighted and truncated."""

    name = "box"
    support = 0

    @staticmethod
    def _sum(b: np.ndarray) -> np.ndarray:
        return b[0::2, 0::2] + b[1::2, 0::2] + b[0::2, 1::2] + b[1::2, 1::2]

    def reduce(self, block: np.ndarray) -> np.ndarray:
        if has_alpha(block):
            b = block.astype(np.uint32)
            premultiplied = b[..., :-1] * b[..., -1:]
            return _weighted(self._sum(b), self._sum(premultiplied), 4, round_half_up=False)
        # OpenCV's area resize by exactly 2 is this 2x2 mean, rounded the same way,
        # (sum + 2) >> 2, in SIMD over interleaved bands, on row-strided views as they
        # come: 7x faster than Pillow's reduce on RGB (which first widens every pixel
        # to 4 bytes and narrows the result back), 20x faster than numpy.
        h, w, bands = block.shape
        if bands > 4:  # beyond OpenCV's vector paths; numpy, with uint16 sums
            return ((self._sum(block.astype(np.uint16)) + 2) >> 2).astype(np.uint8)
        cv2 = opencv()
        out = cv2.resize(block, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        return out.reshape(h // 2, w // 2, bands)


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

    @staticmethod
    def _sum(b: np.ndarray) -> np.ndarray:
        # Output pixel i reads input 2i-1 .. 2i+2; with the one-pixel margin those are
        # 2i .. 2i+3 of ``b``. Weights 1, 3, 3, 1 per axis: 64 in all.
        cols = b[:, 0:-3:2] + 3 * b[:, 1:-2:2] + 3 * b[:, 2:-1:2] + b[:, 3::2]
        return cols[0:-3:2] + 3 * cols[1:-2:2] + 3 * cols[2:-1:2] + cols[3::2]

    def reduce(self, block: np.ndarray) -> np.ndarray:
        b = block.astype(np.uint32)
        if has_alpha(block):
            return _weighted(
                self._sum(b), self._sum(b[..., :-1] * b[..., -1:]), 64, round_half_up=True
            )
        return ((self._sum(b) + 32) >> 6).astype(np.uint8)


BUILTINS = (Box(), Nearest(), Smooth())
