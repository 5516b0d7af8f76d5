"""Tile files: one JSON file per leaf, and a sparsified one per internal node.

These functions run in worker processes. They get plain data (bag file paths, the
store folder, rectangles, child samples) and return plain data. A file is::

    {"key": "031", "level": 3, "rect": [x0, y0, x1, y1], "nrect": [...],
     "sparse": false, "own": 12,
     "nodes": [{"x": 0.41, "y": 0.73, "id": "a", ...attributes}, ...],
     "edges": [{"id": "e1", "source": "a", "target": "b", ...attributes}, ...]}

``rect`` is the region in graph coordinates and ``nrect`` the same in normalised ones;
node positions are normalised to the graph's bounds (0..1 on each axis, axes kept).
The first ``own`` nodes lie in the region; the rest are carried: endpoints outside the
region of edges that cross it, so every edge can be drawn whole from the file alone.
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from .bags import read_bag
from .quadtree import Rect, normalise_rect
from .records import EDGE, NODE, RANKED
from .sparsify import rank_order, select


class Store:
    """Read-only view of the read stage's per-object columns and payloads, mapped
    from disk for one batch of files (so only the pages that batch touched count
    towards the worker's memory, and only while it runs)."""

    def __init__(self, root: str) -> None:
        p = lambda n: os.path.join(root, n)  # noqa: E731
        self.x = _column(p("node_x.bin"), np.float64)
        self.y = _column(p("node_y.bin"), np.float64)
        self.imp = _column(p("node_imp.bin"), np.float64)
        self.tie = _column(p("node_tie.bin"), np.uint64)
        self.noff = _column(p("node_off.bin"), np.int64)
        self.eimp = _column(p("edge_imp_attr.bin"), np.float64)
        self.etie = _column(p("edge_tie.bin"), np.uint64)
        self.eoff = _column(p("edge_off.bin"), np.int64)
        self.npay = _map(p("nodes.payload"))
        self.epay = _map(p("edges.payload"))

    def release(self) -> None:
        """Drop the mapped pages from this process (they stay in the page cache): a
        file's random reads then cost memory for that file only, not for the graph."""
        for col in (self.x, self.y, self.imp, self.tie, self.noff, self.eimp, self.etie, self.eoff):
            m = getattr(col, "_mmap", None)
            if m is not None:
                m.madvise(mmap.MADV_DONTNEED)
        for m in (self.npay, self.epay):
            if isinstance(m, mmap.mmap):
                m.madvise(mmap.MADV_DONTNEED)

    def close(self) -> None:
        for m in (self.npay, self.epay):
            if isinstance(m, mmap.mmap):
                m.close()

    def node_text(self, i: int) -> bytes:
        return self.npay[int(self.noff[i]): int(self.noff[i + 1])]

    def edge_text(self, i: int) -> bytes:
        return self.epay[int(self.eoff[i]): int(self.eoff[i + 1])]


def _column(path: str, dtype: Any) -> np.ndarray:
    if os.path.getsize(path) == 0:
        return np.empty(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r")


def _map(path: str) -> Any:
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return b""
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


_stores: dict[str, Store] = {}


def store(root: str) -> Store:
    """The store of a build, open for the batch being written (see :func:`write_batch`)."""
    s = _stores.get(root)
    if s is None:
        s = _stores[root] = Store(root)
    return s


@dataclass(frozen=True)
class TileJob:
    """What a worker needs to write one tree node's file."""

    key: str
    rect: Rect
    bounds: Rect
    out: str  # file path
    store: str
    budget: int
    #: a leaf: its bags as (path, offset, n_nodes, n_edges)
    bags: tuple[tuple[str, int, int, int], ...] = ()
    #: an internal node: its children's stored-object counts and samples, by digit
    #: (``None``: the child is written earlier in the same batch)
    counts: tuple[int, ...] = ()
    samples: tuple[np.ndarray | None, ...] = ()
    leaf: bool = True


def ranked(st: Store, nodes: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Objects as ranked records, best first."""
    # Each gather reads scattered pages of a column; dropping them after each keeps a
    # worker's mapped memory to about one column's worth of one file's objects.
    out = np.empty(len(nodes) + len(edges), RANKED)
    n = len(nodes)
    out["k"][:n] = 0
    out["i"][:n] = nodes["i"]
    out["imp"][:n] = st.imp[nodes["i"]]
    out["tie"][:n] = st.tie[nodes["i"]]
    st.release()
    out["x1"][:n] = out["x2"][:n] = nodes["x"]
    out["y1"][:n] = out["y2"][:n] = nodes["y"]
    out["s"][:n] = out["t"][:n] = -1
    e = out[n:]
    e["k"] = 1
    e["i"] = edges["i"]
    attr = st.eimp[edges["i"]]
    ends = np.minimum(st.imp[edges["s"]], st.imp[edges["t"]])
    e["imp"] = np.where(np.isnan(attr), ends, attr)
    e["tie"] = st.etie[edges["i"]]
    st.release()
    for f in ("x1", "y1", "x2", "y2", "s", "t"):
        e[f] = edges[f]
    return out[rank_order(out)]


def _num(v: float) -> str:
    return repr(float(v))


def _write(job: TileJob, st: Store, own: np.ndarray, edge_idx: np.ndarray,
           ends: np.ndarray, sparse: bool) -> tuple[int, int, int]:
    """Write the file; returns (nodes incl. carried, edges, bytes)."""
    own = np.asarray(own, dtype=np.int64)
    carried = np.setdiff1d(np.asarray(ends, dtype=np.int64), own)
    x0, y0, x1, y1 = job.bounds
    w, h = x1 - x0, y1 - y0
    parts = [
        '{"key":"%s","level":%d,"rect":[%s],"nrect":[%s],"sparse":%s,"own":%d,"nodes":['
        % (
            job.key, len(job.key), ",".join(map(_num, job.rect)),
            ",".join(map(_num, normalise_rect(job.bounds, job.rect))),
            "true" if sparse else "false", len(own),
        )
    ]
    order = np.concatenate([own, carried])
    nx = ((st.x[order] - x0) / w).tolist()
    ny = ((st.y[order] - y0) / h).tolist()
    st.release()
    parts.append(",".join(
        f'{{"x":{a!r},"y":{b!r},{st.node_text(i).decode()[1:]}'
        for i, a, b in zip(order.tolist(), nx, ny)
    ))
    st.release()
    parts.append('],"edges":[')
    parts.append(",".join(st.edge_text(i).decode() for i in edge_idx.tolist()))
    st.release()
    parts.append("]}\n")
    data = "".join(parts).encode()
    tmp = job.out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, job.out)
    return len(own) + len(carried), len(edge_idx), len(data)


def write_leaf(job: TileJob) -> dict[str, Any]:
    """Write a leaf's file from its bags; return its counts and its ranked sample
    (its best ``budget`` objects, all its parent can take from it)."""
    st = store(job.store)
    ns, es = [np.empty(0, NODE)], [np.empty(0, EDGE)]
    for path, offset, n, e in job.bags:
        a, b = read_bag(path, offset, n, e)
        ns.append(a)
        es.append(b)
    nodes, edges = np.concatenate(ns), np.concatenate(es)
    nodes = nodes[np.argsort(nodes["i"], kind="stable")]
    edges = edges[np.argsort(edges["i"], kind="stable")]
    ends = np.concatenate([edges["s"], edges["t"]])
    n, e, size = _write(job, st, nodes["i"], edges["i"], np.unique(ends), sparse=False)
    return {
        "key": job.key, "nodes": n, "edges": e, "own_nodes": len(nodes), "bytes": size,
        "sample": ranked(st, nodes, edges)[: job.budget],
    }


def write_sparse(job: TileJob) -> dict[str, Any]:
    """Write an internal node's sparsified file from its children's samples."""
    st = store(job.store)
    sample = select(job.rect, list(job.counts), list(job.samples), job.budget)
    nodes = sample[sample["k"] == 0]
    edges = sample[sample["k"] == 1]
    own = np.sort(nodes["i"])
    edge_idx = np.sort(edges["i"])
    ends = np.unique(np.concatenate([edges["s"], edges["t"]]))
    n, e, size = _write(job, st, own, edge_idx, ends, sparse=True)
    return {"key": job.key, "nodes": n, "edges": e, "own_nodes": len(own), "bytes": size,
            "sample": sample}


def write_batch(jobs: list[TileJob]) -> list[dict[str, Any]]:
    """Write consecutive tree nodes in post-order, in one task: a parent in the batch
    takes the samples of its children written before it in the same batch. The
    result of a node whose parent is in the batch has no ``sample`` (it was used)."""
    try:
        return _write_batch(jobs)
    finally:
        for s in _stores.values():
            s.close()
        _stores.clear()


def _write_batch(jobs: list[TileJob]) -> list[dict[str, Any]]:
    local: dict[str, np.ndarray] = {}
    results = []
    for job in jobs:
        if job.leaf:
            res = write_leaf(job)
        else:
            samples = tuple(
                local.pop(job.key + str(d)) if s is None else s
                for d, s in enumerate(job.samples)
            )
            res = write_sparse(TileJob(**{**job.__dict__, "samples": samples}))
        local[job.key] = res["sample"]
        results.append(res)
        for st in _stores.values():
            st.release()
    for res in results:
        if res["key"] not in local:
            res.pop("sample")
    return results
