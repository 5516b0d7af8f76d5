"""Banded builds: images that decode only front to back, a band of builder rows at a time.

A PNG or a baseline JPEG cannot be read region by region. Decoded whole, a 30000²
RGB image is 2.5 GiB; in bands it needs about two bands. A band is one row of
builder-level subtrees with the source rows they read: the subtrees' cores plus the
halo the deepest tiles carry (see :mod:`pyramidd.subtree`), so neighbouring bands
share a few rows. One worker decodes band ``b + 1`` into the second of two band
slots while the others build the subtrees of band ``b``; a slot is decoded again only
once every subtree of the band it holds is done, and the rows two bands share are
copied across, not decoded twice.

Images over :data:`WHOLE_CAP` decoded, or over half the budget, are built this way.
The builder level is chosen so that two band slots fit in half the memory budget
(the rest is for the workers, their tile stacks and the cores of the levels below)
and in :data:`BAND_CAP`, and as shallow as that allows, for the same locality the
region-read build has.

Plain functions over plain data; the engine runs the plan.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from . import planner
from .grid import Grid, Halo, TileKey
from .options import BuildOptions
from .subtree import child_halo

#: Share of the memory budget the two band slots may take.
BAND_SHARE = 0.5
#: Most the two band slots take whatever the budget. Thinner bands mean shallower
#: subtrees and more top-level tasks (at 16384² RGB, 24 MiB slots make 1089 subtrees
#: against 289 with 48 MiB ones, about 8 % more wall), but the slots are most of a
#: banded build's memory: 64 MiB keeps a 16384² JPEG build at 1.5x the memory of
#: ``vips dzsave``, where 128 MiB gave 1.8-2.0x.
BAND_CAP = 64 << 20
#: Bands a build aims for: the first band's decode and the last band's build are not
#: overlapped with anything, so fewer bands leave the workers idle longer.
MIN_BANDS = 8
#: Images that decode to more than this are built in bands even within the budget:
#: the decode then overlaps the build instead of preceding it, and memory stays low.
WHOLE_CAP = 64 << 20
#: Budget when none is given: this share of the memory available at the start.
DEFAULT_BUDGET_SHARE = 0.5


@dataclass(frozen=True)
class Band:
    """Source rows ``[y0, y1)`` and the builder subtrees that read only them."""

    y0: int
    y1: int
    subtrees: tuple[TileKey, ...]

    @property
    def rows(self) -> int:
        """Rows of source pixels the band holds."""
        return self.y1 - self.y0


@dataclass(frozen=True)
class BandPlan:
    """The builder level, its subtrees in band order, and the bands in decode order."""

    plan: planner.Plan
    bands: tuple[Band, ...]

    @property
    def slot_rows(self) -> int:
        """Rows a band slot must hold: the tallest band."""
        return max(b.rows for b in self.bands)


def memory_budget(options: BuildOptions) -> int:
    """The build's memory budget in bytes: ``--memory-budget``, or half of what is
    available when the build starts."""
    given = options.extra.get("memory_budget")
    if given:
        return int(given)
    return int(_available() * DEFAULT_BUDGET_SHARE)


def _available() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def should_band(decoded_bytes: int, budget: int) -> bool:
    """Whether an image of ``decoded_bytes`` is built in bands rather than decoded whole:
    over :data:`WHOLE_CAP`, or over half the budget. Small images are decoded whole (no
    decoder pipeline to set up for a few tiles)."""
    return decoded_bytes > min(WHOLE_CAP, budget * BAND_SHARE)


def margin(grid: Grid, builder_level: int, support: int) -> int:
    """Source rows a builder reads past its core on a side facing out of it: the halo
    of its full-resolution tiles (doubling per level, see :mod:`pyramidd.subtree`)."""
    halo = grid.overlap
    for _ in range(grid.top - builder_level):
        halo = child_halo(Halo(halo, halo, halo, halo), 0, 0, grid.overlap, support).top
    return halo


def bands_at(grid: Grid, level: int, support: int, flip_y: bool) -> list[Band]:
    """The bands of builder level ``level``, in source-row order.

    With ``flip_y`` (TMS) the pyramid is built over the image upside down, so the
    grid's last row of subtrees reads the source's first rows.
    """
    cols, rows = grid.tiles_across(level)
    side = grid.tile_size * grid.scale(level)  # source rows under one builder tile
    m = margin(grid, level, support)
    out = []
    for r in range(rows):
        g0, g1 = max(0, r * side - m), min(grid.height, (r + 1) * side + m)
        y0, y1 = (grid.height - g1, grid.height - g0) if flip_y else (g0, g1)
        out.append(Band(y0, y1, tuple(TileKey(level, c, r) for c in range(cols))))
    return sorted(out, key=lambda b: b.y0)


def slot_bytes(grid: Grid, bands: list[Band], pixel_bytes: int) -> int:
    """Bytes of one band slot for ``bands``."""
    return max(b.rows for b in bands) * grid.width * pixel_bytes


def plan(
    grid: Grid, workers: int, budget: int, pixel_bytes: int, support: int, flip_y: bool
) -> BandPlan:
    """The shallowest builder level whose two band slots fit the budget's share (at
    most :data:`BAND_CAP`), that gives every worker several subtrees and the build
    :data:`MIN_BANDS` bands (fewer if the image is short); the full-resolution level
    if none does (an image so wide that one row of tiles is over the budget)."""
    limit = min(budget * BAND_SHARE, BAND_CAP)
    want = max(1, workers) * planner.SUBTREES_PER_WORKER
    lowest = max(grid.min_level, grid.top - planner.MAX_SUBTREE_HEIGHT)

    def fits(level: int, min_bands: int) -> bool:
        cols, rows = grid.tiles_across(level)
        slots = 2 * slot_bytes(grid, bands_at(grid, level, support, flip_y), pixel_bytes)
        return cols * rows >= want and rows >= min_bands and slots <= limit

    levels = range(lowest, grid.top + 1)
    chosen = next((lv for lv in levels if fits(lv, MIN_BANDS)), None)
    if chosen is None:  # a short image: as many bands as it has rows of subtrees
        chosen = next((lv for lv in levels if fits(lv, 1)), grid.top)
    bands = bands_at(grid, chosen, support, flip_y)
    subtrees = tuple(key for band in bands for key in band.subtrees)
    return BandPlan(planner.Plan(chosen, subtrees), tuple(bands))
