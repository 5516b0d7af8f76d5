"""Pure logic of graph pyramids: quadkeys, placement, the build's tree."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pyramidd.graph.bags import GraphQuadtree
from pyramidd.graph.quadtree import (
    child_rect,
    key_rect,
    pad_bounds,
    point_quadrants,
    segments_hit_rect,
    tile_name,
)
from pyramidd.graph.records import EDGE, NODE

BOUNDS = (-3.0, 1.0, 5.0, 9.0)


def test_key_rect_halves_per_digit() -> None:
    assert key_rect(BOUNDS, "") == BOUNDS
    assert key_rect(BOUNDS, "0") == (-3.0, 1.0, 1.0, 5.0)
    assert key_rect(BOUNDS, "3") == (1.0, 5.0, 5.0, 9.0)
    assert key_rect(BOUNDS, "12") == (1.0, 3.0, 3.0, 5.0)
    assert key_rect(BOUNDS, "12") == child_rect(key_rect(BOUNDS, "1"), 2)
    assert tile_name("") == "q.json" and tile_name("031") == "q031.json"


def test_points_go_to_one_child_high_half_on_the_midline() -> None:
    x = np.array([-3.0, 1.0, 0.999, 5.0])
    y = np.array([1.0, 5.0, 4.0, 1.0])
    assert point_quadrants(x, y, BOUNDS).tolist() == [0, 3, 0, 1]


def _brute_hit(seg: tuple[float, float, float, float], rect: tuple[float, ...]) -> bool:
    t = np.linspace(0, 1, 4001)
    x = seg[0] + (seg[2] - seg[0]) * t
    y = seg[1] + (seg[3] - seg[1]) * t
    return bool(((x >= rect[0]) & (x <= rect[2]) & (y >= rect[1]) & (y <= rect[3])).any())


coord = st.floats(-10, 10, allow_nan=False).map(lambda v: round(v, 2))


@settings(max_examples=300, deadline=None)
@given(coord, coord, coord, coord)
def test_segment_hits_agree_with_sampling(x1: float, y1: float, x2: float, y2: float) -> None:
    rect = (-1.0, -2.0, 3.0, 1.5)
    got = segments_hit_rect(*(np.array([v]) for v in (x1, y1, x2, y2)), rect)[0]
    want = _brute_hit((x1, y1, x2, y2), rect)
    if got != want:  # sampling misses only grazing contacts
        assert got and not want


def test_one_rectangle_per_segment_answers_as_one_at_a_time() -> None:
    rng = np.random.default_rng(4)
    x1, y1, x2, y2 = (np.round(rng.uniform(-3, 3, 400), 1) for _ in range(4))
    rects = [(-1.0, -2.0, 3.0, 1.5), (0.0, 0.0, 0.5, 10.0), (0.5, 0.5, 0.5, 0.5), (-1.0, 0.0, 0.0, 1.0)]
    which = rng.integers(0, len(rects), 400)
    each = tuple(np.array([rects[w][j] for w in which]) for j in range(4))
    got = segments_hit_rect(x1, y1, x2, y2, each)
    for j, rect in enumerate(rects):
        sel = which == j
        assert got[sel].tolist() == segments_hit_rect(x1[sel], y1[sel], x2[sel], y2[sel], rect).tolist()


def test_segment_through_corner_and_degenerate() -> None:
    rect = (0.0, 0.0, 1.0, 1.0)
    hit = segments_hit_rect(
        np.array([-1.0, 0.5, 2.0, -1.0]), np.array([1.0, 0.5, 2.0, 0.0]),
        np.array([1.0, 0.5, 3.0, -1.0]), np.array([-1.0, 0.5, 3.0, 2.0]), rect,
    )
    assert hit.tolist() == [True, True, False, False]


def test_pad_bounds_gives_extent() -> None:
    assert pad_bounds(1, 1, 1, 1) == (0.5, 0.5, 1.5, 1.5)
    x0, y0, x1, y1 = pad_bounds(0, 2, 10, 2)
    assert (x0, x1) == (0, 10) and y1 - y0 == 10


def _nodes(xy: list[tuple[float, float]]) -> np.ndarray:
    a = np.zeros(len(xy), NODE)
    a["i"] = np.arange(len(xy))
    a["x"] = [p[0] for p in xy]
    a["y"] = [p[1] for p in xy]
    return a


def test_tree_shape_does_not_depend_on_insertion_order(tmp_path) -> None:
    rng = np.random.default_rng(3)
    nodes = _nodes([tuple(p) for p in rng.random((500, 2))])
    edges = np.zeros(200, EDGE)
    edges["i"] = np.arange(200)
    edges["s"], edges["t"] = rng.integers(0, 500, 200), rng.integers(0, 500, 200)
    edges["x1"], edges["y1"] = nodes["x"][edges["s"]], nodes["y"][edges["s"]]
    edges["x2"], edges["y2"] = nodes["x"][edges["t"]], nodes["y"][edges["t"]]
    shapes = []
    for order_seed in (0, 1):
        tree = GraphQuadtree((0, 0, 1, 1), bag_size=8, bags_per_leaf=4, max_depth=12,
                             spill=tmp_path / str(order_seed), budget=4096)
        p = np.random.default_rng(order_seed).permutation(500)
        work = [("", nodes[p[:250]], edges[:100]), ("", nodes[p[250:]], edges[100:])]
        while work:  # the reworker's part, inline
            for rw in tree.insert(*work.pop()):
                n = [b.load()[0] for b in rw.bags]
                e = [b.load()[1] for b in rw.bags]
                work.append((rw.key, np.concatenate(n), np.concatenate(e)))
        assert tree.shed_bags > 0  # the tiny budget made it shed
        shapes.append({k: q.count for k, q in tree.nodes.items()})
    assert shapes[0] == shapes[1]


def test_depth_limit_stops_splitting_inseparable_points(tmp_path) -> None:
    tree = GraphQuadtree((0, 0, 1, 1), bag_size=4, bags_per_leaf=1, max_depth=3,
                         spill=tmp_path, budget=1 << 20)
    work = [("", _nodes([(0.3, 0.3)] * 20), np.empty(0, EDGE))]
    while work:
        for rw in tree.insert(*work.pop()):
            work.append((rw.key, np.concatenate([b.load()[0] for b in rw.bags]),
                         np.empty(0, EDGE)))
    assert tree.levels() == 4
    assert tree.depth_limited == ["030"]
    assert tree.nodes["030"].count == 20


def test_bounds_are_padded_at_any_magnitude_and_refused_past_a_float():
    import pytest

    from pyramidd.graph.errors import GraphDataError
    from pyramidd.graph.quadtree import pad_bounds

    # Next to 1e17 a padding of 0.5 is lost: a zero-width extent divided by zero.
    for x, y in [(1e17, 5.0), (1e300, 1e300), (1.5, -1e17)]:
        x0, y0, x1, y1 = pad_bounds(x, y, x, y)
        assert x1 > x0 and y1 > y0
    x0, y0, x1, y1 = pad_bounds(1e17, 5.0, 1e17, 6.0)
    assert x1 > x0 and (y0, y1) == (5.0, 6.0)
    # -1e308 .. 1e308 is wider than a float: the tiles held NaN, written as bare 'nan'
    with pytest.raises(GraphDataError, match="wider than a float holds"):
        pad_bounds(-1e308, 5.0, 1e308, 6.0)
