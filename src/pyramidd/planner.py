"""Where the pyramid is cut into subtrees: the builder level (seed 003).

Each builder makes one tile of the *builder level* and everything above it, down
to the full-resolution tiles, on its own; the coordinator then makes the levels
below from the builders' roots. A deep builder level gives each builder a large,
compact region (locality, fewer tiles crossing processes); a shallow one gives the
scheduler enough pieces to balance the workers. The planner takes the deepest
subtrees that still give every worker several pieces.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import morton
from .grid import Grid, TileKey

#: Subtrees per worker the planner aims for, so stealing has pieces to balance with.
SUBTREES_PER_WORKER = 4
#: Deepest subtree (levels from root to full resolution). Bounds the halo a builder
#: carries along its subtree's edges, which doubles per level (see subtree.py).
MAX_SUBTREE_HEIGHT = 7


@dataclass(frozen=True)
class Plan:
    """The builder level and its subtree roots in Morton order."""

    builder_level: int
    subtrees: tuple[TileKey, ...]


def work_units(grid: Grid, level: int) -> float:
    """Subtrees of ``level`` counted by the share of a whole one they cover.

    A 16384² image in 254-pixel tiles has 3x3 subtrees of 8128² pixels at one level,
    but five of them are slivers 128 pixels wide: four pieces of work, not nine.
    """
    w, h = grid.level_size(level)
    return (w / grid.tile_size) * (h / grid.tile_size)


def subtree_tiles(grid: Grid, root: TileKey) -> int:
    """Tiles of ``root``'s subtree, from ``root`` up to full resolution: the work it
    is, to the scheduler (a sliver along the image's edge is a few per level)."""
    count = 0
    for d in range(grid.top - root.level + 1):
        cols, rows = grid.tiles_across(root.level + d)
        span = 1 << d
        across = min(cols, (root.col + 1) * span) - root.col * span
        down = min(rows, (root.row + 1) * span) - root.row * span
        count += max(0, across) * max(0, down)
    return count


def builder_level(grid: Grid, workers: int, per_worker: int = SUBTREES_PER_WORKER) -> int:
    """The lowest level with at least ``workers * per_worker`` subtrees' worth of
    pixels (:func:`work_units`), within the height cap.

    Falls back to the full-resolution level when the image has fewer tiles than that.
    """
    want = max(1, workers) * per_worker
    lowest = max(grid.min_level, grid.top - MAX_SUBTREE_HEIGHT)
    for level in range(lowest, grid.top + 1):
        if work_units(grid, level) >= want:
            return level
    return grid.top


def plan(grid: Grid, workers: int) -> Plan:
    """Builder level and Morton-ordered subtree roots for ``workers`` workers."""
    level = builder_level(grid, workers)
    cols, rows = grid.tiles_across(level)
    cells = morton.z_order((c, r) for r in range(rows) for c in range(cols))
    return Plan(level, tuple(TileKey(level, c, r) for c, r in cells))
