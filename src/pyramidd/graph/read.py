"""The read stage (the seed's *adders*): a graph source to chunks of records on disk.

:func:`read_graph` runs in a worker process. It streams the source, applies the
bad-data policy, numbers nodes and edges in reading order, writes each object's text
once to a payload file, and writes the numeric records in chunk files
``spill/chunks/cNNNNNN.npz`` that the insert stage picks up as they appear. It stays
at most ``MAX_PENDING`` chunks ahead of the insert stage (which reports progress in
``spill/consumed``), so the two run concurrently with a bounded queue between them
(once the bounds are known: until then the chunks only wait on disk).

Edges whose endpoints have not been read yet are held back (as hashes, 24 bytes
each) and resolved at the end, so node and edge order in the file do not matter.
The tree needs the graph's bounds before the first insert: they are published in
``spill/bounds.json`` at the first edge (formats list nodes first) or at the end; if a
node read later falls outside them the coordinator rebuilds the tree from the chunks.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .errors import GraphDataError, staging_removed
from .idtable import IdTable, hash_ids
from .records import EDGE, NODE, GraphOptions
from .sources.base import NODE as NODE_RECORD
from .sources.base import GraphSource

MAX_PENDING = 8
EXAMPLES = 5

#: Reasons a record is skipped under ``bad_data = "skip"``, and what to do about each.
REASONS = {
    "missing-id": "give every node an id",
    "missing-position": "give every node numeric x and y",
    "bad-coordinate": "give every node finite numeric x and y (no NaN, inf or text)",
    "duplicate-id": "give every node a distinct id",
    "unknown-endpoint": "make every edge's source and target the id of a node in the file",
}


@dataclass
class StorePaths:
    """Where the read stage left the per-object arrays and payloads."""

    root: str

    def path(self, name: str) -> str:
        return os.path.join(self.root, name)


@dataclass
class ReadResult:
    """What the read stage found."""

    nodes: int
    edges: int
    chunks: int
    bounds: tuple[float, float, float, float] | None
    provisional: tuple[float, float, float, float] | None
    skipped: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    store: StorePaths | None = None
    bytes_read: int = 0


class _Grow:
    """A growable 1-D numpy array."""

    def __init__(self, dtype: Any) -> None:
        self.a = np.empty(1024, dtype=dtype)
        self.n = 0

    def extend(self, values: np.ndarray) -> None:
        need = self.n + len(values)
        if need > len(self.a):
            bigger = np.empty(max(need, 2 * len(self.a)), dtype=self.a.dtype)
            bigger[: self.n] = self.a[: self.n]
            self.a = bigger
        self.a[self.n:need] = values
        self.n = need

    @property
    def view(self) -> np.ndarray:
        return self.a[: self.n]


class _Column:
    """A per-object array written to a raw file as it grows (never held in memory)."""

    def __init__(self, path: str, dtype: Any) -> None:
        self.f = open(path, "wb", buffering=1 << 18)
        self.dtype = np.dtype(dtype)
        self.n = 0

    def extend(self, values: np.ndarray) -> None:
        self.f.write(np.ascontiguousarray(values, dtype=self.dtype).tobytes())
        self.n += len(values)

    def close(self) -> None:
        self.f.close()


class _Payloads:
    """Append-only text of objects, with offsets (``n + 1`` of them)."""

    def __init__(self, path: str, offsets_path: str) -> None:
        self.f = open(path, "wb", buffering=1 << 20)
        self.off = _Column(offsets_path, np.int64)
        self.off.extend(np.zeros(1, dtype=np.int64))
        self.pos = 0

    def add(self, texts: list[bytes]) -> None:
        lens = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
        self.f.write(b"".join(texts))
        self.off.extend(self.pos + np.cumsum(lens))
        self.pos += int(lens.sum())

    def flush(self) -> None:
        self.f.flush()
        self.off.f.flush()

    def close(self) -> None:
        self.f.close()
        self.off.close()


def _atomic_write(path: str, data: bytes) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


#: Keys a tile's node or edge object has of its own; an attribute of the same name (a
#: CSV column "x", a GEXF attribute titled "id") is kept as ``attr_NAME``.
NODE_KEYS, EDGE_KEYS = ("id", "x", "y"), ("id", "source", "target")

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


def _apart(attrs: dict[str, Any], reserved: tuple[str, ...]) -> dict[str, Any]:
    """``attrs`` with those named like a reserved key renamed ``attr_NAME``."""
    if not any(k in attrs for k in reserved):
        return attrs
    return {f"attr_{k}" if k in reserved else k: v for k, v in attrs.items()}


def _json(obj: dict[str, Any]) -> bytes:
    """``obj`` as compact JSON text in UTF-8; a lone surrogate (a JSON "\\ud800" in the
    input) is written back as that escape, not as bytes UTF-8 cannot hold."""
    return _dumps(obj).encode("utf-8", "backslashreplace")


def _coord(value: Any) -> float | None:
    """A coordinate as float; None when it is not a finite number."""
    if isinstance(value, bool):
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


class _Reader:
    def __init__(self, source: GraphSource, spill: str, opts: GraphOptions) -> None:
        self.source = source
        self.spill = spill
        self.opts = opts
        os.makedirs(os.path.join(spill, "chunks"), exist_ok=True)
        os.makedirs(os.path.join(spill, "store"), exist_ok=True)
        self.store = StorePaths(os.path.join(spill, "store"))
        self.ids = IdTable()
        self.x = _Grow(np.float64)
        self.y = _Grow(np.float64)
        # Only what resolving edges and ranking needs stays in memory (x, y, degree and
        # the id table: 32 bytes a node); the other per-object columns go to disk.
        self.deg = _Grow(np.uint32)
        st = self.store.path
        self.imp = _Column(st("node_imp_attr.bin"), np.float64)
        self.tie = _Column(st("node_tie.bin"), np.uint64)
        self.eimp = _Column(st("edge_imp_attr.bin"), np.float64)
        self.etie = _Column(st("edge_tie.bin"), np.uint64)
        self.npay = _Payloads(st("nodes.payload"), st("node_off.bin"))
        self.epay = _Payloads(st("edges.payload"), st("edge_off.bin"))
        self.pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.edges_resolved = 0
        self.chunk_no = 0
        self.skipped: dict[str, int] = {}
        self.examples: dict[str, list[str]] = {}
        self.bounds = [math.inf, math.inf, -math.inf, -math.inf]
        self.provisional: tuple[float, float, float, float] | None = None
        self.seed = int(opts.seed).to_bytes(8, "little", signed=True)
        self.bytes_read = 0
        self.nrec = 0

    # ------------------------------------------------------------------ bad data

    def bad(self, reason: str, what: str) -> None:
        if self.opts.bad_data == "error":
            raise GraphDataError(
                f"{self.source.path.name}: {what}; {REASONS[reason]}, "
                f"or build with bad_data = \"skip\" to leave such records out (counted and logged)"
            )
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        ex = self.examples.setdefault(reason, [])
        if len(ex) < EXAMPLES:
            ex.append(what)

    # ------------------------------------------------------------------ stages

    def run(self) -> ReadResult:
        nodes: list[tuple[Any, ...]] = []
        edges: list[tuple[Any, ...]] = []

        def progress(n: int) -> None:
            self.bytes_read = n

        try:
            for rec in self.source.records(progress):
                self.nrec += 1
                if rec[0] == NODE_RECORD:
                    nodes.append(rec)
                else:
                    if self.provisional is None and (nodes or self.x.n):
                        self.flush(nodes, [])
                        nodes = []
                        self.publish_bounds()
                    edges.append(rec)
                if len(nodes) + len(edges) >= self.opts.chunk:
                    self.flush(nodes, edges)
                    nodes, edges = [], []
        except UnicodeDecodeError as exc:  # the sources decode as they read
            raise InputError(f"{self.source.path.name}: not UTF-8 text (a byte"
                             f" {exc.object[exc.start]:#04x}: {exc.reason}); save it as"
                             " UTF-8") from None
        self.flush(nodes, edges)
        self.resolve_pending()
        if not self.x.n:
            raise GraphDataError(
                f"{self.source.path.name}: no node with a position; a graph pyramid needs "
                "nodes with numeric x and y"
            )
        if self.provisional is None:
            self.publish_bounds()
        self.finish()
        return ReadResult(
            nodes=self.x.n,
            edges=self.edges_resolved,
            chunks=self.chunk_no,
            bounds=tuple(self.bounds),  # type: ignore[arg-type]
            provisional=self.provisional,
            skipped=self.skipped,
            examples=self.examples,
            store=self.store,
            bytes_read=self.bytes_read,
        )

    def publish_bounds(self) -> None:
        self.provisional = tuple(self.bounds)  # type: ignore[assignment]
        _atomic_write(os.path.join(self.spill, "bounds.json"), json.dumps(self.bounds).encode())

    def flush(self, nodes: list[tuple[Any, ...]], edges: list[tuple[Any, ...]]) -> None:
        node_rec = self.add_nodes(nodes) if nodes else np.empty(0, NODE)
        edge_rec = self.add_edges(edges) if edges else np.empty(0, EDGE)
        self.write_chunk(node_rec, edge_rec)

    def add_nodes(self, nodes: list[tuple[Any, ...]]) -> np.ndarray:
        ids: list[str] = []
        xs: list[float] = []
        ys: list[float] = []
        attrs: list[dict[str, Any]] = []
        for _, ident, x, y, a in nodes:
            if ident is None or ident == "":
                self.bad("missing-id", f"a node has no id (attributes {a!r:.80})")
                continue
            ident = str(ident)
            if x is None or y is None:
                self.bad("missing-position", f"node {ident!r} has no position (x, y)")
                continue
            fx, fy = _coord(x), _coord(y)
            if fx is None or fy is None:
                self.bad("bad-coordinate", f"node {ident!r} has coordinates ({x!r}, {y!r})")
                continue
            ids.append(ident)
            xs.append(fx)
            ys.append(fy)
            attrs.append(a)
        h = hash_ids(ids)
        # Duplicates: against earlier chunks, then within this one (first one wins).
        known = self.ids.lookup(h) >= 0
        _, first = np.unique(h, return_index=True)
        keep = np.zeros(len(h), dtype=bool)
        keep[first] = True
        keep &= ~known
        for n in np.flatnonzero(~keep):
            self.bad("duplicate-id", f"node id {ids[n]!r} appears more than once")
        sel = np.flatnonzero(keep)
        base = self.x.n
        idx = base + np.arange(len(sel), dtype=np.int64)
        self.ids.add(h[sel], idx)
        x = np.asarray(xs, dtype=np.float64)[sel]
        y = np.asarray(ys, dtype=np.float64)[sel]
        self.x.extend(x)
        self.y.extend(y)
        if len(sel):
            b = self.bounds
            b[0], b[1] = min(b[0], float(x.min())), min(b[1], float(y.min()))
            b[2], b[3] = max(b[2], float(x.max())), max(b[3], float(y.max()))
        imp = np.full(len(sel), np.nan)
        if self.opts.importance != "degree":
            for j, n in enumerate(sel):
                v = _coord(attrs[n].get(self.opts.importance))
                if v is not None:
                    imp[j] = v
        self.imp.extend(imp)
        self.deg.extend(np.zeros(len(sel), dtype=np.uint32))
        self.tie.extend(hash_ids([ids[n] for n in sel], self.seed))
        self.npay.add([_json({"id": ids[n], **_apart(attrs[n], NODE_KEYS)}) for n in sel])
        rec = np.empty(len(sel), NODE)
        rec["i"], rec["x"], rec["y"] = idx, x, y
        return rec

    def add_edges(self, edges: list[tuple[Any, ...]]) -> np.ndarray:
        base = self.etie.n
        srcs: list[str] = []
        tgts: list[str] = []
        texts: list[bytes] = []
        ties: list[str] = []
        eimp = np.full(len(edges), np.nan)
        for n, (_, s, t, ident, a) in enumerate(edges):
            s = "" if s is None else str(s)
            t = "" if t is None else str(t)
            srcs.append(s)
            tgts.append(t)
            obj = {"source": s, "target": t, **_apart(a, EDGE_KEYS)}
            if ident is not None:
                obj = {"id": str(ident), **obj}
            texts.append(_json(obj))
            ties.append(f"{s}\0{t}\0{base + n}")
            if self.opts.edge_importance:
                v = _coord(a.get(self.opts.edge_importance))
                if v is not None:
                    eimp[n] = v
        self.epay.add(texts)
        self.etie.extend(hash_ids(ties, self.seed))
        self.eimp.extend(eimp)
        hs, ht = hash_ids(srcs), hash_ids(tgts)
        return self.resolve(base + np.arange(len(edges), dtype=np.int64), hs, ht, final=False,
                            names=(srcs, tgts))

    def resolve(
        self, eidx: np.ndarray, hs: np.ndarray, ht: np.ndarray, final: bool,
        names: tuple[list[str], list[str]] | None = None,
    ) -> np.ndarray:
        s, t = self.ids.lookup(hs), self.ids.lookup(ht)
        ok = (s >= 0) & (t >= 0)
        miss = np.flatnonzero(~ok)
        if len(miss):
            if final:
                for n in miss:
                    self.bad("unknown-endpoint", self._edge_text(int(eidx[n])))
            else:
                self.pending.append((eidx[miss], hs[miss], ht[miss]))
        sel = np.flatnonzero(ok)
        rec = np.empty(len(sel), EDGE)
        rec["i"], rec["s"], rec["t"] = eidx[sel], s[sel], t[sel]
        x, y = self.x.view, self.y.view
        rec["x1"], rec["y1"] = x[rec["s"]], y[rec["s"]]
        rec["x2"], rec["y2"] = x[rec["t"]], y[rec["t"]]
        np.add.at(self.deg.a, rec["s"], 1)
        np.add.at(self.deg.a, rec["t"], 1)
        self.edges_resolved += len(sel)
        return rec

    def _edge_text(self, e: int) -> str:
        # The edge's own text, read back from the payload file (only for messages).
        self.epay.flush()
        off = np.fromfile(self.store.path("edge_off.bin"), dtype=np.int64, count=2, offset=8 * e)
        with open(self.store.path("edges.payload"), "rb") as f:
            f.seek(int(off[0]))
            text = f.read(int(off[1] - off[0])).decode()
        obj = json.loads(text)
        return (f"edge {obj.get('id', '#' + str(e))!r} from {obj.get('source')!r} to "
                f"{obj.get('target')!r} names a node that is not in the file (or was skipped)")

    def resolve_pending(self) -> None:
        pending, self.pending = self.pending, []
        for eidx, hs, ht in pending:
            self.write_chunk(np.empty(0, NODE), self.resolve(eidx, hs, ht, final=True))

    def write_chunk(self, nodes: np.ndarray, edges: np.ndarray) -> None:
        if not len(nodes) and not len(edges):
            return
        consumed_path = os.path.join(self.spill, "consumed")
        # Back-pressure: stay at most MAX_PENDING chunks ahead of the insert stage. Not
        # before the bounds are published: until then the insert stage cannot start,
        # and the chunks wait on disk.
        while True:
            if not os.path.isdir(self.spill):
                raise staging_removed(os.path.dirname(self.spill))
            if self.provisional is None:
                break
            try:
                with open(consumed_path) as f:
                    consumed = int(f.read() or 0)
            except (OSError, ValueError):
                consumed = 0
            if self.chunk_no - consumed < MAX_PENDING:
                break
            time.sleep(0.01)
        path = os.path.join(self.spill, "chunks", f"c{self.chunk_no:06d}.npz")
        with open(path + ".tmp", "wb") as f:
            np.savez(f, nodes=nodes, edges=edges, read=np.int64(self.bytes_read))
        os.replace(path + ".tmp", path)
        self.chunk_no += 1

    def finish(self) -> None:
        st = self.store.path
        for column in (self.npay, self.epay, self.imp, self.tie, self.eimp, self.etie):
            column.close()
        self.x.view.tofile(st("node_x.bin"))
        self.y.view.tofile(st("node_y.bin"))
        # Importance: the attribute where the profile names one (0 where a node lacks
        # it), else the degree.
        if self.opts.importance == "degree":
            self.deg.view.astype(np.float64).tofile(st("node_imp.bin"))
        else:
            imp = np.fromfile(st("node_imp_attr.bin"), dtype=np.float64)
            np.nan_to_num(imp, nan=0.0).tofile(st("node_imp.bin"))


def chunk_path(spill: str | Path, n: int) -> Path:
    """Path of the ``n``-th chunk file."""
    return Path(spill) / "chunks" / f"c{n:06d}.npz"


def read_graph(source: GraphSource, spill: str, opts: GraphOptions) -> ReadResult:
    """Run the read stage to the end. Runs in a worker process."""
    return _Reader(source, spill, opts).run()
