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

from dataclasses import dataclass
from typing import Any

import numpy as np

from .quadtree import Rect, segments_hit_rect
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
    return _before(objs, *cutoff)


def _before(objs: np.ndarray, neg_imp: Any, tie: Any, kind: Any, index: Any) -> np.ndarray:
    # The rank parts are scalars, or arrays with one cutoff per record.
    a = -objs["imp"]
    before = a < neg_imp
    same = a == neg_imp
    for field, value in (("tie", tie), ("k", kind), ("i", index)):
        col = objs[field]
        before |= same & (col < value)
        same &= col == value
    return before


@dataclass(frozen=True)
class CutoffTable:
    """Every internal node's cutoff as plain arrays, by node code (see :func:`node_code`),
    sorted: what the workers writing sparse files look cutoffs up in."""

    codes: np.ndarray  # int64, sorted
    set: np.ndarray  # bool: False where the cutoff is None
    neg_imp: np.ndarray
    tie: np.ndarray
    kind: np.ndarray
    index: np.ndarray

    @classmethod
    def from_dict(cls, cutoffs: dict[str, Cutoff]) -> "CutoffTable":
        """The table of ``{quadkey: cutoff}`` for every internal node."""
        keys = sorted(cutoffs, key=node_code)
        rows = [cutoffs[k] or (0.0, 0, 0, 0) for k in keys]
        return cls(
            np.array([node_code(k) for k in keys], dtype=np.int64),
            np.array([cutoffs[k] is not None for k in keys], dtype=bool),
            np.array([r[0] for r in rows], dtype=np.float64),
            np.array([r[1] for r in rows], dtype=np.uint64),
            np.array([r[2] for r in rows], dtype=np.uint8),
            np.array([r[3] for r in rows], dtype=np.int64),
        )

    def find(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each node code: whether it is an internal node, and its row."""
        row = np.searchsorted(self.codes, codes)
        row[row == len(self.codes)] = 0
        found = self.codes[row] == codes if len(self.codes) else np.zeros(len(codes), dtype=bool)
        return found, row


def node_code(key: str) -> int:
    """A quadkey as one integer: its digits in base 4 after a leading 1 (so ``"0"`` and
    ``"00"`` differ); a child's code is ``4 * code + digit``."""
    return int("1" + key, 4)


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


def shown(admitted: np.ndarray, key: str, root: Rect, cutoffs: CutoffTable) -> np.ndarray:
    """Which of the objects node ``key`` admits its file shows.

    ``cutoffs`` holds the cutoff of every internal node (a node not in it is a leaf);
    ``root`` is the graph's bounds. A node lies only in ``key`` at this level; an edge
    is followed from the root down the nodes its segment touches (the build's routing)
    to every node of this level it lies in, and must rank before each one's cutoff.
    """
    keep = np.ones(len(admitted), dtype=bool)
    level = len(key)
    # (edge, tree node) pairs, one level at a time: the node's code and rectangle,
    # halved as child_rect halves it, so the floats are the build's own.
    edge = np.flatnonzero(admitted["k"] == 1)
    code = np.ones(len(edge), dtype=np.int64)
    x0, y0, x1, y1 = (np.full(len(edge), v, dtype=np.float64) for v in root)
    for _ in range(level):
        if not len(edge):
            break
        mx, my = (x0 + x1) * 0.5, (y0 + y1) * 0.5
        kids = []
        for d in range(4):
            qx, qy = d & 1, d >> 1
            kids.append((edge, code * 4 + d, mx if qx else x0, my if qy else y0,
                         x1 if qx else mx, y1 if qy else my))
        edge, code, x0, y0, x1, y1 = (np.concatenate(parts) for parts in zip(*kids))
        # Only internal nodes matter: a leaf shows everything and has nothing below.
        internal, row = cutoffs.find(code)
        e = admitted[edge]
        on = internal & segments_hit_rect(e["x1"], e["y1"], e["x2"], e["y2"], (x0, y0, x1, y1))
        edge, code, row, x0, y0, x1, y1 = (v[on] for v in (edge, code, row, x0, y0, x1, y1))
    if level and len(edge):
        c = cutoffs
        ok = ~c.set[row] | _before(admitted[edge], c.neg_imp[row], c.tie[row], c.kind[row], c.index[row])
        keep[edge[~ok]] = False
    return keep
