"""Sparsification as plain functions: ranks, cutoffs, and what each tile shows."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pyramidd.graph.quadtree import Rect, child_rect, point_quadrants, segments_hit_rect
from pyramidd.graph.records import RANKED
from pyramidd.graph.sparsify import (
    Cutoff,
    CutoffTable,
    admit,
    cut,
    fit,
    rank_of,
    rank_order,
    ranks_before,
    shown,
    tightest,
)

ROOT = (0.0, 0.0, 1.0, 1.0)


def _ranked(objs: list[tuple]) -> np.ndarray:
    """``RANKED`` records from (kind, index, importance, x1, y1, x2, y2[, s, t])."""
    out = np.zeros(len(objs), RANKED)
    for j, (k, i, imp, x1, y1, x2, y2, *ends) in enumerate(objs):
        s, t = ends or ((-1, -1) if k == 0 else (1000 + i, 2000 + i))
        out[j] = (k, i, imp, i * 7919 % 101, x1, y1, x2, y2, s, t)
    return out[rank_order(out)]


def _random_objects(rng: np.random.Generator, n: int, long_share: float = 0.2) -> np.ndarray:
    """Nodes and edges between them in the unit square, a share of the edges long."""
    k = n // 2
    xy = rng.random((k, 2))
    objs = [(0, i, float(rng.integers(0, 4)), *xy[i], *xy[i], -1, -1) for i in range(k)]
    for j in range(n - k):
        a = int(rng.integers(0, k))
        b = int(rng.integers(0, k)) if rng.random() < long_share else min(k - 1, a + 1)
        objs.append((1, j, float(min(objs[a][2], objs[b][2])), *xy[a], *xy[b], a, b))
    return _ranked(objs)


def _lies_in(objs: np.ndarray, rect: Rect, digit: int) -> np.ndarray:
    """The build's placement rule for the child ``digit`` of ``rect``."""
    sub = child_rect(rect, digit)
    node = objs["k"] == 0
    return np.where(node, point_quadrants(objs["x1"], objs["y1"], rect) == digit,
                    segments_hit_rect(objs["x1"], objs["y1"], objs["x2"], objs["y2"], sub))


def _tree(objs: np.ndarray, capacity: int, max_depth: int = 6) -> dict[str, tuple[Rect, np.ndarray]]:
    """Every tree node's rectangle and objects, split as the build splits."""
    out: dict[str, tuple[Rect, np.ndarray]] = {}
    work = [("", ROOT, objs)]
    while work:
        key, rect, inside = work.pop()
        out[key] = (rect, inside)
        if len(inside) > capacity and len(key) < max_depth:
            for d in range(4):
                work.append((key + str(d), child_rect(rect, d), inside[_lies_in(inside, rect, d)]))
    return out


def _is_leaf(tree: dict, key: str) -> bool:
    return key + "0" not in tree


def _sparsify(tree: dict, budget: int) -> tuple[dict[str, Cutoff], dict[str, np.ndarray]]:
    """The build's two passes: cutoffs children first, then what each internal node shows."""
    admitted: dict[str, tuple[np.ndarray, Cutoff]] = {}
    for key in sorted(tree, key=len, reverse=True):
        rect, inside = tree[key]
        if _is_leaf(tree, key):
            admitted[key] = cut(inside[rank_order(inside)], budget)
        else:
            admitted[key] = admit([admitted[key + str(d)] for d in range(4)], budget)
    cutoffs = {k: admitted[k][1] for k in tree if not _is_leaf(tree, k)}
    table = CutoffTable.from_dict(cutoffs)
    files = {}
    for key in tree:
        a = admitted[key][0]
        files[key] = tree[key][1] if _is_leaf(tree, key) else a[shown(a, key, ROOT, table)]
    return cutoffs, files


def _ids(objs: np.ndarray) -> set[int]:
    return set((objs["i"] * 2 + objs["k"]).tolist())


def test_ranks_before_agrees_with_rank_order() -> None:
    objs = _random_objects(np.random.default_rng(1), 80)
    for j, obj in enumerate(objs):
        assert ranks_before(objs, rank_of(obj)).tolist() == [n < j for n in range(len(objs))]
    assert ranks_before(objs, None).all()
    ranks = [rank_of(o) for o in objs]
    assert ranks == sorted(ranks) and tightest([None, ranks[5], ranks[2]]) == ranks[2]
    assert tightest([None, None]) is None


def _fit_one_by_one(sample: np.ndarray, budget: int) -> int:
    seen: set[int] = set()
    cost = 0
    for n, o in enumerate(sample):
        new = {int(o["i"])} if o["k"] == 0 else {int(o["s"]), int(o["t"])}
        add = (o["k"] == 1) + len(new - seen)
        if cost + add > budget:
            return n
        cost += add
        seen |= new
    return len(sample)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 60))
def test_fit_agrees_with_counting_one_object_at_a_time(seed: int, budget: int) -> None:
    objs = _random_objects(np.random.default_rng(seed), 50, 0.5)
    assert fit(objs, budget) == _fit_one_by_one(objs, budget)
    assert fit(objs[:0], budget) == 0


def test_fit_counts_the_endpoint_nodes_an_edge_needs() -> None:
    # A node, then an edge from it to a node not in the sample: 1 + (1 + 1).
    objs = _ranked([(0, 1, 9.0, 0.1, 0.1, 0.1, 0.1),
                    (1, 2, 5.0, 0.1, 0.1, 0.9, 0.9, 1, 7),
                    (0, 7, 1.0, 0.9, 0.9, 0.9, 0.9)])
    assert fit(objs, 2) == 1
    assert fit(objs, 3) == 3  # node 7 came with the edge: it costs nothing more
    kept, cutoff = cut(objs, 2)
    assert len(kept) == 1 and cutoff == rank_of(objs[1])
    assert cut(objs, 99)[1] is None


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 30))
def test_a_node_admits_the_fitting_prefix_of_its_own_objects(seed: int, budget: int) -> None:
    objs = _random_objects(np.random.default_rng(seed), 60)
    children = [cut(objs[_lies_in(objs, ROOT, d)], budget) for d in range(4)]
    admitted, cutoff = admit(children, budget)
    want, want_cutoff = cut(objs, budget, tightest([c for _, c in children]))
    assert np.array_equal(admitted, want) and cutoff == want_cutoff
    # Cutoffs loosen downwards.
    for _, c in children:
        assert c is None or (cutoff is not None and cutoff <= c)


def test_a_long_edge_is_shown_by_every_tile_of_a_level_or_by_none() -> None:
    # Level 2: tiles "01" and "10" are neighbours but not siblings; the edge crosses both.
    edge = _ranked([(1, 1, 5.0, 0.4, 0.1, 0.6, 0.1)])
    internal = {"": None, "0": None, "1": None, "01": None, "10": None}

    def show(key: str, cutoffs: dict[str, Cutoff]) -> bool:
        return bool(shown(edge, key, ROOT, CutoffTable.from_dict(cutoffs))[0])

    assert show("01", internal)
    # "10" only admits objects of importance above 5: "01" may not show the edge either.
    tight = {**internal, "10": (-6.0, 0, 0, 0)}
    assert not show("01", tight) and not show("10", tight)
    # A leaf at that level shows everything it stores: no constraint from it.
    assert show("01", {k: v for k, v in tight.items() if k != "10"})
    # Nor does a tighter tile of another level.
    assert show("01", {**internal, "1": (-6.0, 0, 0, 0)})


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(3, 24), st.floats(0, 0.5))
def test_sparse_tiles_are_consistent_within_and_across_levels(
    seed: int, budget: int, long_share: float
) -> None:
    objs = _random_objects(np.random.default_rng(seed), 400, long_share)
    tree = _tree(objs, capacity=24)
    cutoffs, files = _sparsify(tree, budget)
    for key, f in files.items():
        if _is_leaf(tree, key):
            continue
        # Within the budget, carried endpoint nodes included.
        assert fit(f, budget) == len(f)
        assert _ids(f) <= _ids(tree[key][1])
        # Across levels: in every child it lies in.
        for d in range(4):
            inside = f[_lies_in(f, tree[key][0], d)]
            assert _ids(inside) <= _ids(files[key + str(d)])
        # Within the level: in every tile of the level it lies in.
        for other, (_, objs_there) in tree.items():
            if len(other) == len(key):
                assert _ids(f) & _ids(objs_there) <= _ids(files[other])


def test_the_order_objects_come_in_does_not_change_the_sample() -> None:
    objs = _random_objects(np.random.default_rng(5), 300, 0.3)
    a = _sparsify(_tree(objs, 20), 12)
    b = _sparsify(_tree(objs[np.random.default_rng(6).permutation(len(objs))], 20), 12)
    assert a[0] == b[0]
    assert {k: _ids(f) for k, f in a[1].items()} == {k: _ids(f) for k, f in b[1].items()}
