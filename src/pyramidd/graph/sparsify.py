"""Sparsification: the sample an internal tree node carries, from its children's.

Every object has a global **rank**: more important first (``imp``, default the degree;
an edge's is the lesser of its endpoints'), ties broken by a seeded hash of its id
(``tie``), so a build is reproducible and a different seed gives a different sample.

Depth first, up to the root, a node's sample is made from its four children's:

1. each child ``c`` gets a quota ``k_c`` of the node budget in proportion to the
   objects stored under it (largest remainders; a quota a child cannot fill goes to
   the others);
2. ``P_c`` is the first ``k_c`` objects of the child's sample (a leaf's sample is its
   whole content in rank order);
3. an object is taken when it is in ``P_c`` for **every** child it lies in.

4. the result is cut, in rank order, where the file would exceed the budget counting
   the endpoint nodes the file must carry for its edges (so a sparse file never holds
   more than the budget; any subset of a consistent sample is consistent).

Rule 3 makes views consistent across levels: an object shown at a node is in the
sample of every child it lies in, hence (by induction) shown at every deeper node
where it lies, down to the leaves. An edge crossing several children must rank high
enough in each, so a long edge is shown whole or not at all. The writer adds the
endpoint nodes of every sampled edge to the file, so each file references only nodes
it carries.
"""

from __future__ import annotations

import numpy as np

from .quadtree import Rect, child_rect, point_quadrants, segments_hit_rect
from .records import RANKED


def rank_order(objs: np.ndarray) -> np.ndarray:
    """Indices that sort ``RANKED`` records best first (deterministic total order)."""
    return np.lexsort((objs["i"], objs["k"], objs["tie"], -objs["imp"]))


def allocate(budget: int, counts: list[int], avail: list[int]) -> list[int]:
    """Quotas proportional to ``counts`` summing to at most ``budget``, each at most
    ``avail``; what a child cannot use is shared among the others the same way."""
    quota = [0] * len(counts)
    left = budget
    active = [i for i in range(len(counts)) if counts[i] > 0 and avail[i] > 0]
    while left > 0 and active:
        total = sum(counts[i] for i in active)
        exact = [left * counts[i] / total for i in active]
        give = [int(e) for e in exact]
        # Largest remainders get the slots floor() left over (ties by child order).
        spare = left - sum(give)
        for j in sorted(range(len(active)), key=lambda j: -(exact[j] - give[j]))[:spare]:
            give[j] += 1
        for j, i in enumerate(active):
            take = min(give[j], avail[i] - quota[i])
            quota[i] += take
            left -= take
        active = [i for i in active if quota[i] < avail[i]]
    return quota


def lies_in(objs: np.ndarray, rect: Rect, digit: int) -> np.ndarray:
    """Which objects lie in the child ``digit`` of the node covering ``rect``.

    Same placement rules as the build uses to route objects.
    """
    nodes = objs["k"] == 0
    out = np.zeros(len(objs), dtype=bool)
    if nodes.any():
        out[nodes] = point_quadrants(objs["x1"][nodes], objs["y1"][nodes], rect) == digit
    edges = ~nodes
    if edges.any():
        e = objs[edges]
        out[edges] = segments_hit_rect(e["x1"], e["y1"], e["x2"], e["y2"], child_rect(rect, digit))
    return out


def select(
    rect: Rect, counts: list[int], samples: list[np.ndarray], budget: int
) -> np.ndarray:
    """The sample of a node covering ``rect`` from its 4 children (by digit): their
    stored-object ``counts`` and ranked ``samples``. Returns ranked records, best first.
    """
    quota = allocate(budget, counts, [len(s) for s in samples])
    prefixes = [s[:k] for s, k in zip(samples, quota)]
    cand = np.concatenate(prefixes) if prefixes else np.empty(0, RANKED)
    if not len(cand):
        return cand
    uid = cand["i"] * 2 + cand["k"]
    _, first = np.unique(uid, return_index=True)
    cand = cand[np.sort(first)]
    uid = cand["i"] * 2 + cand["k"]
    keep = np.ones(len(cand), dtype=bool)
    for digit, prefix in enumerate(prefixes):
        inside = lies_in(cand, rect, digit)
        member = np.isin(uid, prefix["i"] * 2 + prefix["k"])
        keep &= ~inside | member
    out = cand[keep]
    return fit(out[rank_order(out)], budget)


def fit(sample: np.ndarray, budget: int) -> np.ndarray:
    """The longest rank-order prefix of ``sample`` whose file — its nodes, its edges
    and the endpoint nodes those edges need — holds at most ``budget`` objects."""
    seen: set[int] = set()
    cost = 0
    kinds, ids = sample["k"].tolist(), sample["i"].tolist()
    ss, ts = sample["s"].tolist(), sample["t"].tolist()
    for n in range(len(sample)):
        if kinds[n] == 0:
            add = 0 if ids[n] in seen else 1
            new = (ids[n],)
        else:
            new = (ss[n], ts[n]) if ss[n] != ts[n] else (ss[n],)
            add = 1 + sum(1 for v in new if v not in seen)
        if cost + add > budget:
            return sample[:n]
        cost += add
        seen.update(new)
    return sample
