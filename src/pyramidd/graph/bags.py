"""The quadtree of a build and its bags, shed to disk under a memory budget.

Objects live only at leaves, in **bags** of at most ``bag_size`` objects. A leaf that
holds more than ``capacity`` objects (and is above ``max_depth``) splits into four
children; its bags are handed back as **rework** for the reworker stage to shed to
disk and re-queue, so the objects are re-inserted from the split node down. When the
bags in memory exceed the budget, the largest leaves' bags are **shed** (written to
``spill/bags``) and read back only when their leaf splits or is written.

The final tree does not depend on insertion order: a region is split exactly when the
objects that lie in it (fixed by the input) exceed the capacity, so any interleaving
of the stages builds the same tree.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import structlog

from .. import libc
from .quadtree import Rect, child_rect, point_quadrants, segments_hit_rect
from .records import EDGE, NODE

log = structlog.get_logger("pyramidd.graph")


def _malloc_trim() -> Callable[[], None]:
    # Bags are many small arrays allocated and freed from several threads; glibc keeps
    # the freed memory in per-thread arenas unless asked to give it back.
    trim = libc.function("malloc_trim")
    if trim is None:
        return lambda: None
    return lambda: trim(0) and None


release_memory = _malloc_trim()


@dataclass
class Bag:
    """Up to ``bag_size`` objects: in memory (``nodes``, ``edges``) or shed to
    ``path`` at ``offset``."""

    nodes: np.ndarray | None
    edges: np.ndarray | None
    n_nodes: int = 0
    n_edges: int = 0
    path: str | None = None
    offset: int = 0

    @property
    def count(self) -> int:
        return self.n_nodes + self.n_edges

    @property
    def nbytes(self) -> int:
        return 0 if self.path else self.n_nodes * NODE.itemsize + self.n_edges * EDGE.itemsize

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        """The objects, read back from disk if the bag was shed."""
        if self.path is None:
            return self.nodes, self.edges  # type: ignore[return-value]
        return read_bag(self.path, self.offset, self.n_nodes, self.n_edges)


class SpillFile:
    """An append-only file of shed bags, shared by the threads of one build.

    One file rather than one per bag: a large build sheds tens of thousands of bags,
    and creating and deleting that many files costs more than writing them.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        self._end = 0
        self._lock = threading.Lock()

    def write(self, nodes: np.ndarray, edges: np.ndarray) -> int:
        """Append a bag's records (nodes then edges); return its offset."""
        data = nodes.tobytes() + edges.tobytes()
        with self._lock:
            offset = self._end
            self._end += len(data)
        view = memoryview(data)
        pos = offset
        while view:
            n = os.pwrite(self._fd, view, pos)
            view, pos = view[n:], pos + n
        return offset

    def close(self) -> None:
        os.close(self._fd)


def read_bag(path: str, offset: int, n_nodes: int, n_edges: int) -> tuple[np.ndarray, np.ndarray]:
    """Read a bag written by :meth:`SpillFile.write`."""
    size = n_nodes * NODE.itemsize + n_edges * EDGE.itemsize
    with open(path, "rb", buffering=0) as f:
        data = os.pread(f.fileno(), size, offset)
    if len(data) != size:
        raise OSError(f"spill file {path} is short at {offset}: the build folder was changed")
    nodes = np.frombuffer(data, dtype=NODE, count=n_nodes).copy()
    edges = np.frombuffer(data, dtype=EDGE, count=n_edges, offset=n_nodes * NODE.itemsize).copy()
    return nodes, edges


@dataclass
class QNode:
    """A node of the build's quadtree."""

    key: str
    rect: Rect
    children: list["QNode"] | None = None
    bags: list[Bag] = field(default_factory=list)
    count: int = 0  # objects stored (a leaf's)
    warned: bool = False

    @property
    def depth(self) -> int:
        return len(self.key)

    @property
    def mem(self) -> int:
        return sum(b.nbytes for b in self.bags)


@dataclass
class Rework:
    """The bags of a leaf that split, to be re-inserted from ``key`` down."""

    key: str
    bags: list[Bag]


class GraphQuadtree:
    """The tree of one build. Used by one thread at a time (the insert stage)."""

    def __init__(
        self, bounds: Rect, *, bag_size: int, bags_per_leaf: int, max_depth: int,
        spill: str | Path, budget: int,
    ) -> None:
        self.bounds = bounds
        self.bag_size = bag_size
        self.capacity = bag_size * bags_per_leaf
        self.max_depth = max_depth
        self.dir = Path(spill)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.spill = SpillFile(self.dir / "bags.dat")
        self.budget = budget
        self.root = QNode("", bounds)
        self.nodes: dict[str, QNode] = {"": self.root}
        self.mem = 0
        self.shed_bags = 0
        self.shed_bytes = 0
        self.depth_limited: list[str] = []

    # ------------------------------------------------------------------ insert

    def insert(self, key: str, nodes: np.ndarray, edges: np.ndarray) -> list[Rework]:
        """Insert objects from the tree node ``key`` down; return the rework of splits."""
        reworks: list[Rework] = []
        work = [(self.nodes[key], nodes, edges)]
        while work:
            q, n, e = work.pop()
            if q.children is not None:
                quad = point_quadrants(n["x"], n["y"], q.rect)
                for c in q.children:
                    digit = int(c.key[-1])
                    cn = n[quad == digit]
                    ce = e[segments_hit_rect(e["x1"], e["y1"], e["x2"], e["y2"], c.rect)]
                    if len(cn) or len(ce):
                        work.append((c, cn, ce))
                continue
            self._add(q, n, e)
            if q.count > self.capacity:
                if q.depth < self.max_depth:
                    reworks.append(self._split(q))
                elif not q.warned:
                    q.warned = True
                    self.depth_limited.append(q.key)
                    log.warning(
                        "graph leaf reached max_depth with more objects than a leaf holds "
                        "(points too close to separate, or a hub's edges): it stays one "
                        "larger leaf", leaf=q.key, max_depth=self.max_depth,
                    )
        self._enforce_budget()
        return reworks

    def _add(self, q: QNode, n: np.ndarray, e: np.ndarray) -> None:
        q.count += len(n) + len(e)
        while len(n) or len(e):
            last = q.bags[-1] if q.bags else None
            if last is None or last.path is not None or last.count >= self.bag_size:
                last = Bag(np.empty(0, NODE), np.empty(0, EDGE))
                q.bags.append(last)
            room = self.bag_size - last.count
            tn, n = n[:room], n[room:]
            room -= len(tn)
            te, e = e[:room], e[room:]
            before = last.nbytes
            if len(tn):
                last.nodes = np.concatenate([last.nodes, tn])
                last.n_nodes += len(tn)
            if len(te):
                last.edges = np.concatenate([last.edges, te])
                last.n_edges += len(te)
            self.mem += last.nbytes - before

    def _split(self, q: QNode) -> Rework:
        q.children = [QNode(q.key + str(d), child_rect(q.rect, d)) for d in range(4)]
        for c in q.children:
            self.nodes[c.key] = c
        bags, q.bags, q.count = q.bags, [], 0
        self.mem -= sum(b.nbytes for b in bags)
        return Rework(q.key, bags)

    # ------------------------------------------------------------------ shedding

    def _enforce_budget(self) -> None:
        if self.mem <= self.budget:
            return
        # Shed the largest leaves first, down to half the budget so shedding is rare.
        target = self.budget // 2
        for q in sorted(self.leaves(), key=lambda q: -q.mem):
            if self.mem <= target:
                break
            for bag in q.bags:
                if bag.path is None and bag.count:
                    self.mem -= bag.nbytes
                    self.shed(bag)
        release_memory()

    def shed(self, bag: Bag) -> None:
        """Write a bag to the spill folder and drop its records from memory."""
        offset = self.spill.write(bag.nodes, bag.edges)  # type: ignore[arg-type]
        self.shed_bags += 1
        self.shed_bytes += bag.n_nodes * NODE.itemsize + bag.n_edges * EDGE.itemsize
        bag.path, bag.offset, bag.nodes, bag.edges = self.spill.path, offset, None, None

    def flush(self) -> None:
        """Write every bag still in memory to the spill file, for the workers that write
        the leaves (not counted as shedding: that is what the budget forced)."""
        counted = self.shed_bags, self.shed_bytes
        for q in self.leaves():
            for bag in q.bags:
                if bag.path is None and bag.count:
                    self.shed(bag)
            q.bags = [b for b in q.bags if b.count]
        self.mem = 0
        self.shed_bags, self.shed_bytes = counted
        # The freed bags are many small blocks: give them back before the writers run.
        release_memory()

    # ------------------------------------------------------------------ reading

    def leaves(self) -> list[QNode]:
        """Leaves in Z-order (quadkey order)."""
        out: list[QNode] = []
        stack = [self.root]
        while stack:
            q = stack.pop()
            if q.children is None:
                out.append(q)
            else:
                stack.extend(reversed(q.children))
        return out

    def levels(self) -> int:
        """Levels of the tree (1 for a lone root)."""
        return 1 + max(len(k) for k in self.nodes)

    def subtree_counts(self) -> dict[str, int]:
        """Objects stored in the leaves under each node (an edge counts once per leaf)."""
        counts: dict[str, int] = {}
        for key in sorted(self.nodes, key=len, reverse=True):
            q = self.nodes[key]
            counts[key] = q.count if q.children is None else sum(counts[c.key] for c in q.children)
        return counts

    def remove_files(self) -> None:
        """Drop the spill file (the tree is dropped)."""
        self.spill.close()
        try:
            os.unlink(self.spill.path)
        except FileNotFoundError:
            pass


def shed_rework(rework: Rework, spill: SpillFile) -> tuple[str, list[Bag]]:
    """The reworker's job: put a split leaf's objects in temporary storage for
    re-insertion from ``rework.key`` down. Bags still in memory are written to the
    spill file as one bag; bags already shed stay where they are (no second write)."""
    shed = [b for b in rework.bags if b.path is not None]
    held = [b for b in rework.bags if b.path is None and b.count]
    if held:
        n = np.concatenate([b.nodes for b in held])  # type: ignore[misc]
        e = np.concatenate([b.edges for b in held])  # type: ignore[misc]
        shed.append(Bag(None, None, len(n), len(e), spill.path, spill.write(n, e)))
    return rework.key, shed
