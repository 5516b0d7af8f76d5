"""Quadtree geometry as plain functions over plain data.

A graph pyramid covers the rectangle ``bounds = (x0, y0, x1, y1)`` of its nodes. A tree
node is named by its **quadkey**: one digit per level below the root, ``0`` the low-x
low-y quarter, ``1`` high x, ``2`` high y, ``3`` both (``digit = qx + 2 * qy``). The root
is the empty key. Every module derives a rectangle from its key with :func:`key_rect`,
so all of them compute bit-identical floats and agree on what lies where.

Placement rules, used both to route objects into the tree and to check it:

- a node (point) lies in exactly one child: the half with ``x >= mid`` is the high one;
- an edge (segment) lies in every child whose *closed* rectangle it touches
  (:func:`segments_hit_rect`), so an edge is whole in every leaf it crosses.
"""

from __future__ import annotations

import math

import numpy as np

Rect = tuple[float, float, float, float]


def split_rect(rect: Rect) -> tuple[float, float]:
    """The midpoint a rectangle splits at."""
    x0, y0, x1, y1 = rect
    return (x0 + x1) * 0.5, (y0 + y1) * 0.5


def child_rect(rect: Rect, digit: int) -> Rect:
    """The quarter of ``rect`` named by ``digit`` (0-3)."""
    x0, y0, x1, y1 = rect
    mx, my = split_rect(rect)
    qx, qy = digit & 1, digit >> 1
    return (mx if qx else x0, my if qy else y0, x1 if qx else mx, y1 if qy else my)


def key_rect(bounds: Rect, key: str) -> Rect:
    """Rectangle of the tree node ``key`` under the root ``bounds``."""
    rect = tuple(float(v) for v in bounds)
    for ch in key:
        rect = child_rect(rect, int(ch))  # type: ignore[arg-type]
    return rect  # type: ignore[return-value]


def point_quadrants(x: np.ndarray, y: np.ndarray, rect: Rect) -> np.ndarray:
    """Digit of the child each point lies in (points are inside ``rect``)."""
    mx, my = split_rect(rect)
    return (x >= mx).astype(np.int8) + 2 * (y >= my).astype(np.int8)


def point_quadrant(x: float, y: float, rect: Rect) -> int:
    """Scalar :func:`point_quadrants`."""
    mx, my = split_rect(rect)
    return int(x >= mx) + 2 * int(y >= my)


def segments_hit_rect(
    x1: np.ndarray, y1: np.ndarray, x2: np.ndarray, y2: np.ndarray, rect: Rect
) -> np.ndarray:
    """Which segments touch the closed rectangle ``rect``.

    A segment touches it when their bounding boxes overlap and the rectangle's corners
    are not all strictly on one side of the segment's line. Exact for the floats given
    (no epsilon), so every caller gets the same answer for the same segment and rect.
    The rectangle's bounds may also be arrays: one rectangle per segment.
    """
    rx0, ry0, rx1, ry1 = rect
    hit = (
        (np.minimum(x1, x2) <= rx1)
        & (np.maximum(x1, x2) >= rx0)
        & (np.minimum(y1, y2) <= ry1)
        & (np.maximum(y1, y2) >= ry0)
    )
    dx, dy = x2 - x1, y2 - y1
    allpos = np.ones(len(x1), dtype=bool)
    allneg = np.ones(len(x1), dtype=bool)
    for cx, cy in ((rx0, ry0), (rx1, ry0), (rx0, ry1), (rx1, ry1)):
        side = dx * (cy - y1) - dy * (cx - x1)
        allpos &= side > 0
        allneg &= side < 0
    return hit & ~allpos & ~allneg


def rects_intersect(a: Rect, b: Rect) -> bool:
    """Whether two closed rectangles share at least a point."""
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


def normalise(bounds: Rect, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Graph coordinates to ``[0, 1]`` along each axis of ``bounds`` (axes kept as they are)."""
    x0, y0, x1, y1 = bounds
    return (x - x0) / (x1 - x0), (y - y0) / (y1 - y0)


def normalise_rect(bounds: Rect, rect: Rect) -> Rect:
    """A rectangle in graph coordinates to normalised ones."""
    x0, y0, x1, y1 = bounds
    w, h = x1 - x0, y1 - y0
    return ((rect[0] - x0) / w, (rect[1] - y0) / h, (rect[2] - x0) / w, (rect[3] - y0) / h)


def denormalise_rect(bounds: Rect, rect: Rect) -> Rect:
    """A rectangle in normalised coordinates to graph ones."""
    x0, y0, x1, y1 = bounds
    w, h = x1 - x0, y1 - y0
    return (x0 + rect[0] * w, y0 + rect[1] * h, x0 + rect[2] * w, y0 + rect[3] * h)


def pad_bounds(x0: float, y0: float, x1: float, y1: float) -> Rect:
    """Bounds with a non-zero extent on both axes (a graph on a line or a single point).

    The padding is at least a billionth of the coordinates' size: next to 1e17, adding
    0.5 leaves a number as it was. :class:`GraphDataError` when an extent is more than
    a float holds (coordinates near ±1e308).
    """
    from .errors import GraphDataError

    for axis, lo, hi in (("x", x0, x1), ("y", y0, y1)):
        if not math.isfinite(hi - lo):
            raise GraphDataError(f"the layout's {axis} runs from {lo:g} to {hi:g}, wider than"
                                 " a float holds; scale the layout down")
    w, h = x1 - x0, y1 - y0
    if w <= 0:
        half = max(h / 2 if h > 0 else 0.5, abs(x0) * 1e-9)
        x0, x1 = x0 - half, x1 + half
    if h <= 0:
        half = max((x1 - x0) / 2, abs(y0) * 1e-9)
        y0, y1 = y0 - half, y1 + half
    if not (x1 > x0 and y1 > y0 and math.isfinite(x1 - x0) and math.isfinite(y1 - y0)):
        raise GraphDataError(f"the layout's bounds ({x0:g}, {y0:g}, {x1:g}, {y1:g}) cannot be"
                             " tiled; scale the layout down")
    return (float(x0), float(y0), float(x1), float(y1))


def tile_name(key: str) -> str:
    """File name of a tree node's JSON file: ``q`` then its quadkey (``q.json`` is the root)."""
    return f"q{key}.json"
