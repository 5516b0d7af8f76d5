"""Building one subtree bottom-up in Z order with a tile stack (seeds 003 and 000).

A builder visits the full-resolution tiles under its root in Z order. Each level
keeps a short stack of finished sibling tiles; as soon as a tile's siblings are all
there, the four are written to the sink and merged into their parent, which goes
on the stack one level down. So at most three finished tiles per level are alive
while the fourth is being made, every source pixel is read once, and nothing is
read back from the output.

**Halos.** A tile's overlap pixels (Deep Zoom) belong to its neighbours, and a
resampler with support reads past its 2x2 block. Both need pixels from beyond a
tile's core. The neighbour inside the same quad is on the stack anyway; the ones
outside it are not built yet (or belong to another builder). So every tile is made
together with a *halo* on the sides that face out of its quad, wide enough for its
own overlap and for everything its parent's halo needs::

    child halo on an outward side = max(overlap, 2 * parent halo + support)

The subtree root carries ``overlap`` on every side; at the full-resolution level
the halos are read from the source with the tile, so the only cost is a few extra
source pixels along quad edges (about ``overlap * height / tile`` of the area per
side), never a second read of a tile or of the output.

The functions here are plain numpy over rectangles; the worker module wraps them
with a source, a resampler and a sink.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

from .grid import Grid, Halo, Rect, TileKey


class Reduce(Protocol):
    """The part of a resampler the builder needs."""

    support: int

    def reduce(self, block: np.ndarray) -> np.ndarray: ...


class ReadRegion(Protocol):
    """The part of a region reader the builder needs."""

    def read_region(self, x: int, y: int, w: int, h: int) -> np.ndarray: ...


@dataclass
class Region:
    """Pixels of a rectangle of one level."""

    rect: Rect
    pixels: np.ndarray


Emit = Callable[[TileKey, Region], None]
"""Called once per finished tile with a region that covers its tile rectangle."""


# --------------------------------------------------------------------------- halos


def child_halo(parent: Halo, dx: int, dy: int, overlap: int, support: int) -> Halo:
    """The halo a child at quad position ``(dx, dy)`` needs (see the module docstring)."""

    def side(outward: bool, parent_side: int) -> int:
        return max(overlap, 2 * parent_side + support) if outward else 0

    return Halo(
        side(dx == 0, parent.left),
        side(dy == 0, parent.top),
        side(dx == 1, parent.right),
        side(dy == 1, parent.bottom),
    )


def halo_rect(grid: Grid, key: TileKey, halo: Halo) -> Rect:
    """The tile's core grown by ``halo``, clipped to its level."""
    x0, y0, x1, y1 = grid.core(key)
    w, h = grid.level_size(key.level)
    return (
        max(0, x0 - halo.left),
        max(0, y0 - halo.top),
        min(w, x1 + halo.right),
        min(h, y1 + halo.bottom),
    )


# --------------------------------------------------------------------------- regions


def union_rect(rects: list[Rect]) -> Rect:
    """Bounding rectangle of ``rects``."""
    return (
        min(r[0] for r in rects),
        min(r[1] for r in rects),
        max(r[2] for r in rects),
        max(r[3] for r in rects),
    )


def assemble(regions: list[Region], rect: Rect | None = None) -> Region:
    """Paste regions into one covering ``rect`` (default: their bounding rectangle).

    Every pixel of ``rect`` must lie in some region; where regions overlap they hold
    the same pixels, so the order does not matter.
    """
    if rect is None:
        rect = union_rect([r.rect for r in regions])
    if len(regions) == 1 and regions[0].rect == rect:
        return regions[0]
    x0, y0, x1, y1 = rect
    bands = regions[0].pixels.shape[2]
    out = np.empty((y1 - y0, x1 - x0, bands), np.uint8)
    for r in regions:
        rx0, ry0, rx1, ry1 = r.rect
        ix0, iy0, ix1, iy1 = max(x0, rx0), max(y0, ry0), min(x1, rx1), min(y1, ry1)
        if ix0 < ix1 and iy0 < iy1:
            out[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0] = r.pixels[
                iy0 - ry0 : iy1 - ry0, ix0 - rx0 : ix1 - rx0
            ]
    return Region(rect, out)


def crop(region: Region, rect: Rect) -> np.ndarray:
    """The pixels of ``rect``, which must lie inside ``region``."""
    x0, y0, x1, y1 = rect
    rx0, ry0, rx1, ry1 = region.rect
    if x0 < rx0 or y0 < ry0 or x1 > rx1 or y1 > ry1:
        raise ValueError(f"{rect} is not inside {region.rect}")
    return region.pixels[y0 - ry0 : y1 - ry0, x0 - rx0 : x1 - rx0]


def take(region: Region, rect: Rect, level_size: tuple[int, int]) -> np.ndarray:
    """Pixels of ``rect``, copying edge pixels for the parts outside the level.

    The part of ``rect`` inside the level must lie inside ``region``. Copying the
    edge is how an odd-sized level is halved (as libvips does) and what a filter
    with support sees past the image border.
    """
    w, h = level_size
    x0, y0, x1, y1 = rect
    inner = (max(0, x0), max(0, y0), min(w, x1), min(h, y1))
    pixels = crop(region, inner)
    pad = ((inner[1] - y0, y1 - inner[3]), (inner[0] - x0, x1 - inner[2]), (0, 0))
    if any(a or b for a, b in pad[:2]):
        pixels = np.pad(pixels, pad, mode="edge")
    return pixels


def reduce_into(
    grid: Grid, resampler: Reduce, source: Region, level: int, rect: Rect
) -> Region:
    """Make ``rect`` of ``level`` from ``source``, a region of ``level + 1``."""
    s = resampler.support
    x0, y0, x1, y1 = rect
    need = (2 * x0 - s, 2 * y0 - s, 2 * x1 + s, 2 * y1 + s)
    block = take(source, need, grid.level_size(level + 1))
    return Region(rect, resampler.reduce(block))


# --------------------------------------------------------------------------- the builder


def build_subtree(
    grid: Grid, root: TileKey, reader: ReadRegion, resampler: Reduce, emit: Emit
) -> Region:
    """Build every tile of ``root``'s subtree, emitting each; return the root's region.

    The returned region covers the root's core (plus its halo).
    """
    overlap, support = grid.overlap, resampler.support

    def build(key: TileKey, halo: Halo) -> Region:
        rect = halo_rect(grid, key, halo)
        if key.level == grid.top:
            x0, y0, x1, y1 = rect
            return Region(rect, reader.read_region(x0, y0, x1 - x0, y1 - y0))
        # The tile stack of this level: finished siblings wait here (three at most)
        # while the next one is built from the level above.
        stack: list[tuple[TileKey, Region]] = []
        for child in grid.children(key):
            dx, dy = child.col - 2 * key.col, child.row - 2 * key.row
            stack.append((child, build(child, child_halo(halo, dx, dy, overlap, support))))
        quad = assemble([region for _, region in stack])
        for child, _ in stack:
            emit(child, quad)
        del stack
        return reduce_into(grid, resampler, quad, key.level, rect)

    edge = Halo(overlap, overlap, overlap, overlap)
    region = build(root, edge)
    emit(root, region)
    return region
