"""Rectangle queries: which files a renderer fetches for its part of the wall.

:func:`cover` starts from the root and refines, coarsest first, while the files stay
within the renderer's budget: a node is replaced by its children that meet the
rectangle when the total count still fits. The result is the deepest cover the
budget allows — leaves where it can, coarser sparsified nodes where leaves would
exceed it — and it always covers the whole rectangle (a node's children that meet
the rectangle cover its part of it). The order and choice are deterministic.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from .index import GraphIndex, Tile
from .quadtree import Rect, rects_intersect


@dataclass(frozen=True)
class Cover:
    """The answer to one rectangle query."""

    tiles: list[Tile]
    total: int
    budget: int
    #: True when even the coarsest cover (the root's file) is over the budget.
    over_budget: bool


def cover(index: GraphIndex, rect: Rect, budget: int) -> Cover:
    """Files covering ``rect`` (graph coordinates) within ``budget`` objects."""
    root = index.root
    if not rects_intersect(root.rect, rect):
        return Cover([], 0, budget, False)
    chosen: dict[str, Tile] = {root.key: root}
    total = root.count
    # Refine the shallowest nodes first, in quadkey order, so coarse detail is spent
    # evenly over the rectangle before any part of it gets deeper.
    heap = [(0, root.key)]
    while heap:
        _, key = heapq.heappop(heap)
        tile = chosen[key]
        if tile.leaf:
            continue
        kids = [c for c in tile.children if c.file is not None and rects_intersect(c.rect, rect)]
        new_total = total - tile.count + sum(c.count for c in kids)
        if new_total > budget:
            continue
        del chosen[key]
        total = new_total
        for c in kids:
            chosen[c.key] = c
            heapq.heappush(heap, (c.level, c.key))
    tiles = sorted(chosen.values(), key=lambda t: t.key)
    return Cover(tiles, total, budget, total > budget)
