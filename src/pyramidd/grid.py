"""Pyramid geometry: levels, tiles and the pixel rectangle of each tile.

Levels are numbered as Deep Zoom numbers them, whatever the layout: the top level is
the full-resolution image, each level below is ``ceil(half)`` of the one above, and
level 0 is 1x1 pixel. A layout that stops at the first level fitting in one tile
(``depth="onetile"``, as TMS and XYZ do) only uses levels ``min_level..top``; it names
them ``zoom = level - min_level``.

A tile's *core* is its share of the level, ``[col*T, (col+1)*T)`` clipped to the level;
the *tile rectangle* adds the overlap on the sides that have a neighbour, as
``vips dzsave`` writes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Literal, NamedTuple

Rect = tuple[int, int, int, int]
"""``(x0, y0, x1, y1)``, half-open, in pixels of one level."""

Depth = Literal["onepixel", "onetile"]


class TileKey(NamedTuple):
    """One tile: DZI level number, column and row (row 0 at the top of the grid)."""

    level: int
    col: int
    row: int


class Halo(NamedTuple):
    """Extra pixels carried around a tile's core on each side: left, top, right, bottom."""

    left: int
    top: int
    right: int
    bottom: int


NO_HALO = Halo(0, 0, 0, 0)

# Child positions inside a parent, in Z order: top-left, top-right, bottom-left, bottom-right.
Z_QUAD: tuple[tuple[int, int], ...] = ((0, 0), (1, 0), (0, 1), (1, 1))


def level_sizes(width: int, height: int) -> list[tuple[int, int]]:
    """Sizes of every DZI level, level 0 (1x1) first and the full image last."""
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    sizes = [(width, height)]
    while sizes[-1] != (1, 1):
        w, h = sizes[-1]
        sizes.append(((w + 1) // 2, (h + 1) // 2))
    sizes.reverse()
    return sizes


@dataclass(frozen=True)
class Grid:
    """The tiles of a pyramid over a ``width`` x ``height`` image."""

    width: int
    height: int
    tile_size: int
    overlap: int = 0
    depth: Depth = "onepixel"
    _sizes: tuple[tuple[int, int], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.tile_size < 1:
            raise ValueError("tile size must be at least 1")
        if not 0 <= self.overlap < self.tile_size:
            raise ValueError("overlap must be at least 0 and less than the tile size")
        object.__setattr__(self, "_sizes", tuple(level_sizes(self.width, self.height)))

    @property
    def top(self) -> int:
        """The full-resolution level."""
        return len(self._sizes) - 1

    @property
    def min_level(self) -> int:
        """The lowest level the layout writes: 0, or the first level that fits one tile."""
        if self.depth == "onepixel":
            return 0
        # Levels shrink downwards, so the first that fits, from the top, is the largest.
        for level in range(self.top, -1, -1):
            w, h = self._sizes[level]
            if w <= self.tile_size and h <= self.tile_size:
                return level
        raise AssertionError("level 0 is 1x1 and fits any tile")

    def levels(self) -> range:
        """Levels written, lowest first."""
        return range(self.min_level, self.top + 1)

    def level_size(self, level: int) -> tuple[int, int]:
        """``(width, height)`` of a level in pixels."""
        return self._sizes[level]

    def tiles_across(self, level: int) -> tuple[int, int]:
        """``(columns, rows)`` of tiles at a level."""
        w, h = self._sizes[level]
        t = self.tile_size
        return -(-w // t), -(-h // t)

    def tile_count(self) -> int:
        """Number of tiles over all written levels."""
        return sum(c * r for c, r in map(self.tiles_across, self.levels()))

    def exists(self, key: TileKey) -> bool:
        """Whether ``key`` names a tile of this grid (at any level, written or not)."""
        if not 0 <= key.level <= self.top:
            return False
        cols, rows = self.tiles_across(key.level)
        return 0 <= key.col < cols and 0 <= key.row < rows

    def keys(self, level: int) -> Iterator[TileKey]:
        """Tiles of a level in row-major order."""
        cols, rows = self.tiles_across(level)
        for row in range(rows):
            for col in range(cols):
                yield TileKey(level, col, row)

    def core(self, key: TileKey) -> Rect:
        """The tile's own pixels, without overlap."""
        w, h = self._sizes[key.level]
        t = self.tile_size
        return (key.col * t, key.row * t, min((key.col + 1) * t, w), min((key.row + 1) * t, h))

    def tile_rect(self, key: TileKey) -> Rect:
        """The pixels written for the tile: the core plus overlap, clipped to the level."""
        x0, y0, x1, y1 = self.core(key)
        w, h = self._sizes[key.level]
        o = self.overlap
        return (max(0, x0 - o), max(0, y0 - o), min(w, x1 + o), min(h, y1 + o))

    def children(self, key: TileKey) -> list[TileKey]:
        """The tiles of the level above that reduce into ``key``, in Z order."""
        if key.level >= self.top:
            return []
        cols, rows = self.tiles_across(key.level + 1)
        out = []
        for dx, dy in Z_QUAD:
            c, r = 2 * key.col + dx, 2 * key.row + dy
            if c < cols and r < rows:
                out.append(TileKey(key.level + 1, c, r))
        return out

    def parent(self, key: TileKey) -> TileKey:
        """The tile one level down that ``key`` reduces into."""
        return TileKey(key.level - 1, key.col // 2, key.row // 2)

    def ancestor(self, key: TileKey, level: int) -> TileKey:
        """The tile at ``level`` (below ``key``'s) whose subtree holds ``key``."""
        shift = key.level - level
        return TileKey(level, key.col >> shift, key.row >> shift)

    def neighbours(self, key: TileKey) -> list[TileKey]:
        """The up to eight tiles around ``key`` at its level."""
        out = []
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                if dx or dy:
                    k = TileKey(key.level, key.col + dx, key.row + dy)
                    if self.exists(k):
                        out.append(k)
        return out

    def scale(self, level: int) -> int:
        """How many full-resolution pixels one pixel of ``level`` spans (a power of two)."""
        return 1 << (self.top - level)

