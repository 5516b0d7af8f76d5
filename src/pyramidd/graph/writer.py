"""Tile files: one JSON file per leaf, and a sparsified one per internal node.

These functions run in worker processes. They get plain data (bag file paths, the
store folder, rectangles, child samples) and return plain data. They come in two
passes: the leaves' files and every internal node's cutoff (:class:`LeafJob`,
:class:`CutJob`, children first), then the internal nodes' files (:class:`SparseJob`),
since what one shows depends on the cutoffs of its whole level (:mod:`.sparsify`).
A file is::

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
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from .bags import read_bag
from .quadtree import Rect, normalise_rect
from .records import EDGE, NODE, RANKED
from .sparsify import Cutoff, CutoffTable, admit, cut, rank_order, shown


class Store:
    """Read-only view of the read stage's per-object columns and payloads for one
    batch of files.

    Columns are mapped (a gather touches scattered pages of one column, dropped after
    it: see :meth:`release`); payloads are read with ``pread``, which leaves their pages
    in the page cache and out of the worker's memory.
    """

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
        self.npay = Payload(p("nodes.payload"))
        self.epay = Payload(p("edges.payload"))

    def release(self, *columns: np.ndarray) -> None:
        """Drop the mapped pages of ``columns`` (default: all) from this process (they
        stay in the page cache): a file's random reads then cost memory for that file
        only, not for the graph."""
        every = (self.x, self.y, self.imp, self.tie, self.noff, self.eimp, self.etie, self.eoff)
        for col in columns or every:
            m = getattr(col, "_mmap", None)
            if m is not None:
                m.madvise(mmap.MADV_DONTNEED)

    def close(self) -> None:
        self.npay.close()
        self.epay.close()

    def node_texts(self, ids: np.ndarray) -> list[bytes]:
        """The texts of nodes ``ids``, in that order."""
        texts = self.npay.read(self.noff[ids], self.noff[ids + 1])
        self.release(self.noff)
        return texts

    def edge_texts(self, ids: np.ndarray) -> list[bytes]:
        """The texts of edges ``ids``, in that order."""
        texts = self.epay.read(self.eoff[ids], self.eoff[ids + 1])
        self.release(self.eoff)
        return texts


#: Texts closer than this in a payload file are read with one ``pread``.
READ_GAP = 4096


class Payload:
    """A payload file, read by offsets with ``pread``.

    Not mapped: the kernel maps the cached pages around each fault of a mapping, so
    every scattered text read through one cost about 64 KiB of the worker's memory
    (over 100 MiB for one leaf's edges at a million nodes).
    """

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)

    def close(self) -> None:
        os.close(self.fd)

    def read(self, starts: np.ndarray, ends: np.ndarray) -> list[bytes]:
        """The bytes ``[starts[n], ends[n])`` for each ``n`` (ranges that do not overlap)."""
        n = len(starts)
        out = [b""] * n
        if not n:
            return out
        order = np.argsort(starts, kind="stable")
        s, e = np.asarray(starts)[order], np.asarray(ends)[order]
        cuts = (np.flatnonzero(s[1:] - e[:-1] > READ_GAP) + 1).tolist()
        sl, el, ol = s.tolist(), e.tolist(), order.tolist()
        pread, fd = os.pread, self.fd
        for a, b in zip([0, *cuts], [*cuts, n]):
            base, size = sl[a], el[b - 1] - sl[a]
            buf = pread(fd, size, base)
            if len(buf) < size:
                buf = _read_rest(fd, buf, size, base)
            if b - a == 1:
                out[ol[a]] = buf
                continue
            for k in range(a, b):
                out[ol[k]] = buf[sl[k] - base: el[k] - base]
        return out


def _read_rest(fd: int, head: bytes, size: int, offset: int) -> bytes:
    """``head`` (a short read at ``offset``) completed to ``size`` bytes."""
    parts = [head]
    got = len(head)
    while got < size:
        data = os.pread(fd, size - got, offset + got)
        if not data:
            raise OSError(f"payload file is short at {offset + got}: the build folder was changed")
        parts.append(data)
        got += len(data)
    return b"".join(parts)


def _column(path: str, dtype: Any) -> np.ndarray:
    if os.path.getsize(path) == 0:
        return np.empty(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r")


_stores: dict[str, Store] = {}


def store(root: str) -> Store:
    """The store of a build, open for the batch being written (see :func:`write_batch`)."""
    s = _stores.get(root)
    if s is None:
        s = _stores[root] = Store(root)
    return s


@dataclass(frozen=True)
class FileJob:
    """Where one tree node's file goes."""

    key: str
    rect: Rect
    bounds: Rect  # the graph's
    out: str  # file path
    store: str


@dataclass(frozen=True)
class LeafJob(FileJob):
    """A leaf's file, from its bags as (path, offset, n_nodes, n_edges); ``budget`` is
    what a sparse file holds, for the cutoff the leaf hands its parent."""

    budget: int = 0
    bags: tuple[tuple[str, int, int, int], ...] = ()


@dataclass(frozen=True)
class CutJob:
    """An internal node's admitted objects and cutoff, from its children's (by digit;
    ``None``: the child is done earlier in the same batch). The admitted objects are
    kept at ``keep`` for the node's file, written once every cutoff is known."""

    key: str
    budget: int
    keep: str
    children: tuple[tuple[np.ndarray, Cutoff] | None, ...]


@dataclass(frozen=True)
class SparseJob(FileJob):
    """An internal node's file: what it admitted (kept at ``admitted``) that every
    node of its level shows, given every internal node's cutoff (saved at ``cutoffs``)."""

    admitted: str = ""
    cutoffs: str = ""


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
    st.release(st.imp, st.tie)
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
    st.release(st.eimp, st.imp, st.etie)
    for f in ("x1", "y1", "x2", "y2", "s", "t"):
        e[f] = edges[f]
    return out[rank_order(out)]


def _num(v: float) -> str:
    return repr(float(v))


def _write(job: FileJob, st: Store, own: np.ndarray, edge_idx: np.ndarray,
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
    st.release(st.x, st.y)
    parts.append(",".join(
        f'{{"x":{a!r},"y":{b!r},{t.decode()[1:]}'
        for t, a, b in zip(st.node_texts(order), nx, ny)
    ))
    parts.append('],"edges":[')
    parts.append(",".join(t.decode() for t in st.edge_texts(np.asarray(edge_idx, dtype=np.int64))))
    parts.append("]}\n")
    data = "".join(parts).encode()
    tmp = job.out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, job.out)
    return len(own) + len(carried), len(edge_idx), len(data)


def write_leaf(job: LeafJob) -> dict[str, Any]:
    """Write a leaf's file from its bags; return its counts and what it hands its
    parent (``sample``: its admitted objects and cutoff)."""
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
        "sample": cut(ranked(st, nodes, edges), job.budget),
    }


def cut_node(job: CutJob) -> dict[str, Any]:
    """An internal node's cutoff; its admitted objects are saved for its file and
    handed to its parent (``sample``)."""
    admitted, cutoff = admit(list(job.children), job.budget)  # type: ignore[arg-type]
    with open(job.keep + ".tmp", "wb") as f:
        np.save(f, admitted)
    os.replace(job.keep + ".tmp", job.keep)
    return {"key": job.key, "cutoff": cutoff, "sample": (admitted, cutoff)}


def write_sparse(job: SparseJob, cutoffs: CutoffTable) -> dict[str, Any]:
    """Write an internal node's sparsified file."""
    st = store(job.store)
    admitted = np.load(job.admitted)
    sample = admitted[shown(admitted, job.key, job.bounds, cutoffs)]
    nodes = sample[sample["k"] == 0]
    edges = sample[sample["k"] == 1]
    own = np.sort(nodes["i"])
    edge_idx = np.sort(edges["i"])
    ends = np.unique(np.concatenate([edges["s"], edges["t"]]))
    n, e, size = _write(job, st, own, edge_idx, ends, sparse=True)
    return {"key": job.key, "nodes": n, "edges": e, "own_nodes": len(own), "bytes": size}


def save_cutoffs(path: str, cutoffs: dict[str, Cutoff]) -> None:
    """Save every internal node's cutoff for the workers writing sparse files."""
    table = CutoffTable.from_dict(cutoffs)
    with open(path + ".tmp", "wb") as f:
        np.savez(f, **{field.name: getattr(table, field.name) for field in fields(table)})
    os.replace(path + ".tmp", path)


def load_cutoffs(path: str) -> CutoffTable:
    """The cutoffs :func:`save_cutoffs` saved."""
    with np.load(path) as z:
        return CutoffTable(**{field.name: z[field.name] for field in fields(CutoffTable)})


Job = LeafJob | CutJob | SparseJob


def write_batch(jobs: list[Job]) -> list[dict[str, Any]]:
    """Do consecutive jobs in one task. Leaves and cuts come in post-order: a cut in
    the batch takes the samples of its children done before it in the same batch, and
    the result of a node whose parent is in the batch has no ``sample`` (it was used)."""
    try:
        return _write_batch(jobs)
    finally:
        for s in _stores.values():
            s.close()
        _stores.clear()


def _write_batch(jobs: list[Job]) -> list[dict[str, Any]]:
    local: dict[str, tuple[np.ndarray, Cutoff]] = {}
    loaded: dict[str, CutoffTable] = {}
    results = []
    for job in jobs:
        if isinstance(job, LeafJob):
            res = write_leaf(job)
        elif isinstance(job, CutJob):
            children = tuple(
                local.pop(job.key + str(d)) if c is None else c for d, c in enumerate(job.children)
            )
            res = cut_node(replace(job, children=children))
        else:
            if job.cutoffs not in loaded:
                loaded[job.cutoffs] = load_cutoffs(job.cutoffs)
            res = write_sparse(job, loaded[job.cutoffs])
        if "sample" in res:
            local[job.key] = res["sample"]
        results.append(res)
        for st in _stores.values():
            st.release()
    for res in results:
        if "sample" in res and res["key"] not in local:
            res.pop("sample")
    return results
