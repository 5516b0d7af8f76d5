"""Sparsification: which objects the file of each internal tree node shows.

Every object has a global **rank**: more important first (``imp``, default the degree;
an edge's is the lesser of its endpoints'), ties broken by a seeded hash of its id
(``tie``), then kind and index, so the order is total, a build is reproducible and a
different seed gives a different sample.

Each tree node ``T`` gets a **cutoff** ``c(T)``: a rank, or ``None`` for none. ``T``
*admits* the objects lying in it that rank strictly before ``c(T)``. Cutoffs are made
depth first, from plain data:

- a leaf: its objects in rank order are cut where a file would exceed the budget
  (counting the endpoint nodes its edges need, see :func:`fit`); ``c`` is the rank of
  the first object cut, ``None`` when none is;
- an internal node: its candidates are its children's admitted objects that rank
  before every child's cutoff; they are cut the same way, and ``c`` is the first cut,
  else the tightest of the children's cutoffs.

The candidates are exactly the node's objects ranking before the children's tightest
cutoff (each of them is admitted by the child it lies in), so a node admits the
longest rank-order prefix of *its own* objects that fits the budget. A parent's
objects include each child's, hence ``c(parent) <= c(child)``: cutoffs only loosen on
the way down, without any clamping.

An object is **shown** at level ``L`` when it ranks before the cutoff of every internal
node of level ``L`` it lies in (a leaf shows all it stores). The rule is the same for
every tile an object crosses, so:

- *same level*: an object a sparse file shows is shown by every file of that level it
  lies in, neighbours that are not siblings included;
- *deeper levels*: every node of level ``L + 1`` it lies in is a child of a node of
  level ``L`` it lies in, with a cutoff no tighter, so it is shown at every deeper
  level where it lies, down to the leaves;
- *budget*: a file shows a subset of what its node admits, and a subset of objects
  never needs more endpoint nodes, so no sparse file exceeds the budget.

The writer adds the endpoint nodes of every shown edge to the file, so each file
references only nodes it carries.
"""

from __future__ import annotations

import numpy as np

from .quadtree import Rect, child_rect, segments_hit_rects
from .records import RANKED

#: A rank as a sortable tuple ``(-imp, tie, kind, index)``; ``None`` is past every rank.
Cutoff = tuple[float, int, int, int] | None


def rank_order(objs: np.ndarray) -> np.ndarray:
    """Indices that sort ``RANKED`` records best first (deterministic total order)."""
    return np.lexsort((objs["i"], objs["k"], objs["tie"], -objs["imp"]))


def rank_of(obj: np.void) -> tuple[float, int, int, int]:
    """The rank of one ``RANKED`` record, comparable with ``<`` as :func:`rank_order` sorts."""
    return (-float(obj["imp"]), int(obj["tie"]), int(obj["k"]), int(obj["i"]))


def tightest(cutoffs: list[Cutoff]) -> Cutoff:
    """The tightest of some cutoffs (``None`` when none is set)."""
    real = [c for c in cutoffs if c is not None]
    return min(real) if real else None


def ranks_before(objs: np.ndarray, cutoff: Cutoff) -> np.ndarray:
    """Which ``RANKED`` records rank strictly before ``cutoff``."""
    if cutoff is None:
        return np.ones(len(objs), dtype=bool)
    neg_imp, tie, kind, index = cutoff
    a = -objs["imp"]
    before = a < neg_imp
    same = a == neg_imp
    for field, value in (("tie", tie), ("k", kind), ("i", index)):
        col = objs[field]
        before |= same & (col < value)
        same &= col == value
    return before


def fit(sample: np.ndarray, budget: int) -> int:
    """Length of the longest prefix of ``sample`` whose file — its nodes, its edges and
    the endpoint nodes those edges need — holds at most ``budget`` objects."""
    n = len(sample)
    node = sample["k"] == 0
    # Each object names up to two nodes (a node itself; an edge its endpoints); a node
    # costs where it is first named, and an edge costs one more for itself.
    named = np.stack([np.where(node, sample["i"], sample["s"]),
                      np.where(node, -1, sample["t"])], axis=1).ravel()
    _, first = np.unique(named, return_index=True)
    first = first[named[first] >= 0]
    cost = np.bincount(first // 2, minlength=n) + ~node
    return int(np.searchsorted(np.cumsum(cost), budget, side="right"))


def cut(ranked: np.ndarray, budget: int, cutoff: Cutoff = None) -> tuple[np.ndarray, Cutoff]:
    """What a node admits from ``ranked`` (its objects ranking before ``cutoff``, best
    first; for a leaf, all its objects): the fitting prefix, and the node's cutoff."""
    n = fit(ranked, budget)
    if n < len(ranked):
        return ranked[:n], rank_of(ranked[n])
    return ranked, cutoff


def admit(children: list[tuple[np.ndarray, Cutoff]], budget: int) -> tuple[np.ndarray, Cutoff]:
    """What an internal node admits, best first, and its cutoff, from each child's
    admitted objects and cutoff."""
    cutoff = tightest([c for _, c in children])
    parts = [a for a, _ in children if len(a)]
    if not parts:
        return np.empty(0, RANKED), cutoff
    cand = np.concatenate(parts)
    # An edge crossing several children comes from each of them: keep it once.
    _, first = np.unique(cand["i"] * 2 + cand["k"], return_index=True)
    cand = cand[first]
    cand = cand[ranks_before(cand, cutoff)]
    return cut(cand[rank_order(cand)], budget, cutoff)


def shown(admitted: np.ndarray, key: str, root: Rect, cutoffs: dict[str, Cutoff]) -> np.ndarray:
    """Which of the objects node ``key`` admits its file shows.

    ``cutoffs`` holds the cutoff of every internal node (a key not in it is a leaf);
    ``root`` is the graph's bounds. A node lies only in ``key`` at this level; an edge
    is followed from the root down the nodes its segment touches (the build's routing)
    to every node of this level it lies in, and must rank before each one's cutoff.
    """
    keep = np.ones(len(admitted), dtype=bool)
    level = len(key)
    stack = [("", root, np.flatnonzero(admitted["k"] == 1))]
    while stack:
        at, rect, idx = stack.pop()
        if len(at) == level:
            keep[idx] &= ranks_before(admitted[idx], cutoffs[at])
            continue
        idx = idx[keep[idx]]  # an edge already left out needs no more tests
        # Only internal children matter: a leaf shows everything and has nothing below.
        digits = [d for d in range(4) if at + str(d) in cutoffs]
        if not len(idx) or not digits:
            continue
        e = admitted[idx]
        subs = [child_rect(rect, d) for d in digits]
        hits = segments_hit_rects(e["x1"], e["y1"], e["x2"], e["y2"], subs)
        for j, d in enumerate(digits):
            if hits[:, j].any():
                stack.append((at + str(d), subs[j], idx[hits[:, j]]))
    return keep
