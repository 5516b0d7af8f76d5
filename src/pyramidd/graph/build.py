"""Build a graph pyramid: the coordinator of the read → insert → rework stages and
the tile writers.

Entry points (used by ``pyramidd build`` and the service):

- :func:`probe` — which registered ``graph-source`` reads a path;
- :func:`build_graph` — the whole build, atomic: the output is made in a hidden
  staging folder beside ``output``, ``index.json`` is written last, and the folder is
  renamed into place; an interrupted build leaves nothing at ``output``.

Stages (the seed's adders, workers and reworkers), all running at once:

1. **read** — :func:`.read.read_graph` in a worker process writes chunk files;
2. **insert** — this coordinator picks chunks up as they appear and inserts them
   into the :class:`~.bags.GraphQuadtree` (in a thread: the event loop never blocks);
3. **rework** — a task takes the bags of each leaf that split, sheds them to one
   file (:func:`.bags.shed_rework`) and queues them back to the insert stage, which
   takes rework before new chunks.

Queues between stages are bounded (chunk files ahead of the insert stage, bags
waiting for the reworker). Then, in worker processes, the leaves' files are written in
Z-order and each internal node's sparsification cutoff is made as soon as its four
children are done (depth first up to the root); then the internal nodes' sparse
files, once every cutoff of their level is known (:mod:`.sparsify`).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import anyio
import numpy as np
import structlog

from ..errors import UnsupportedInput
from ..sinks.staging import Staging
from .bags import Bag, GraphQuadtree, QNode, shed_rework
from .errors import StagingRemoved, staging_removed
from .index import INDEX_NAME, TILES_DIR, write_index
from .quadtree import Rect, pad_bounds, tile_name
from .read import ReadResult, chunk_path, read_graph
from .records import EDGE, NODE, RANKED, GraphOptions
from .sources.base import GraphSource
from .sparsify import Cutoff
from .writer import CutJob, Job, LeafJob, SparseJob, save_cutoffs, write_batch

log = structlog.get_logger("pyramidd.graph")

Progress = Callable[[int, int], None]

#: Share of the memory budget the insert stage may keep in bags; the rest is for the
#: read stage's tables, chunks in flight and the writers.
BAG_SHARE = 0.5
#: Bags of split leaves waiting for the reworker.
REWORK_QUEUE = 16
#: Chunk files inserted in one walk down the tree, at most.
MERGE_CHUNKS = 8
#: A write task takes up to this many consecutive tree nodes, or objects worth this
#: many leaves.
BATCH_NODES = 16
BATCH_OBJECTS = 4


def probe(path: Path, registry: Any) -> GraphSource | None:
    """The source of the first ``graph-source`` format (highest priority first) that
    reads ``path``, or ``None`` if none does. Reads at most the head of the file."""
    formats = sorted(registry.of_kind("graph-source"), key=lambda e: -getattr(e.obj, "priority", 0))
    for entry in formats:
        source = entry.obj.probe(Path(path))
        if source is not None:
            return source
    return None


def _builtin_probe(path: Path) -> GraphSource | None:
    from .sources import BUILTINS

    for fmt in sorted(BUILTINS, key=lambda f: -f.priority):
        source = fmt.probe(Path(path))
        if source is not None:
            return source
    return None


async def build_graph(
    input: Path,
    output: Path,
    options: dict[str, Any],
    *,
    pool: Any = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Build the graph pyramid of ``input`` at ``output`` (a folder).

    ``options``: graph options (see :class:`.records.GraphOptions`: ``bag_size``,
    ``bags_per_leaf``, ``max_depth``, ``memory_budget``, ``bad_data``,
    ``importance``, ``edge_importance``, ``seed``), ``replace`` to replace an existing
    output, ``registry`` (a plugin registry to probe with; default the loaded
    plugins'), ``workers`` (when no ``pool`` is given). ``pool`` has
    ``async run(fn, *args)`` (:class:`pyramidd.pool.WorkerPool`); ``progress(done,
    total)`` gets input bytes read while reading, then files written.

    Returns the summary: ``output``, ``nodes``, ``edges``, ``leaves``, ``levels``,
    ``tiles`` (files), ``bytes``, ``seconds``, ``skipped`` (by reason), ``shed_bags``.
    """
    started = time.monotonic()
    input, output = Path(input), Path(output)
    opts = GraphOptions.from_dict(options)
    registry = options.get("registry")
    if registry is None:
        try:
            from .. import plugins

            registry = plugins.load().registry
        except Exception:  # no plugin machinery (e.g. a bare checkout): the built-ins
            registry = None
    source = probe(input, registry) if registry is not None else _builtin_probe(input)
    if source is None:
        raise UnsupportedInput(
            f"{input.name}: not a graph format pyramidd reads (GraphML, GEXF, graphology or "
            "node-link JSON, or a nodes/edges CSV pair)"
        )
    if pool is None:
        from ..pool import WorkerPool

        async with WorkerPool(int(options.get("workers") or 0)) as own_pool:
            return await build_graph(
                input, output, {**options, "registry": registry}, pool=own_pool, progress=progress
            )

    staging = Staging(output.parent, (output.name,), replace=bool(options.get("replace")))
    staging.check()
    staging.start()
    try:
        out = staging.staged(output.name)
        (out / TILES_DIR).mkdir(parents=True)
        spill = staging.path / "spill"
        spill.mkdir()
        try:
            result, tree = await _Stages(source, spill, opts, progress).run(pool)
            summary = await _write(pool, tree, result, out, spill, opts, progress)
        except BaseExceptionGroup as group:
            raise _first_error(group) from None
        meta = {
            "bounds": list(tree.bounds),
            "nodes": result.nodes,
            "edges": result.edges,
            "levels": tree.levels(),
            "leaves": summary["leaves"],
            "bag_size": opts.bag_size,
            "bags_per_leaf": opts.bags_per_leaf,
            "capacity": opts.capacity,
            "options": {k: v for k, v in opts.as_dict().items() if k != "chunk"},
            "skipped": result.skipped,
            "depth_limited": tree.depth_limited,
            "source": {"name": input.name, "format": source.format},
        }
        # Plugins' files (the viewer page) join the pyramid before its index, the last
        # file written, makes it whole.
        await anyio.to_thread.run_sync(_publish, pool, staging, output, options)
        summary["bytes"] += await anyio.to_thread.run_sync(
            write_index, out / INDEX_NAME, meta, summary.pop("index")
        )
        await anyio.to_thread.run_sync(tree.remove_files)
        await anyio.to_thread.run_sync(shutil.rmtree, spill)
        await anyio.to_thread.run_sync(staging.commit)
    except BaseException as exc:
        with anyio.CancelScope(shield=True):
            # Whatever failed first when the folder went (a worker's missing file, say),
            # the cause to report is that it went.
            removed = (isinstance(exc, Exception) and not isinstance(exc, StagingRemoved)
                       and not await anyio.to_thread.run_sync(staging.path.is_dir))
            await anyio.to_thread.run_sync(staging.abort)
        if removed:
            raise staging_removed(staging.path) from exc
        raise
    summary.update(
        output=str(output), nodes=result.nodes, edges=result.edges, levels=tree.levels(),
        seconds=time.monotonic() - started, skipped=result.skipped,
        shed_bags=tree.shed_bags, shed_bytes=tree.shed_bytes,
        depth_limited=len(tree.depth_limited),
    )
    log.info("graph pyramid built", **{k: v for k, v in summary.items() if k != "skipped"})
    return summary


def _publish(pool: Any, staging: Staging, output: Path, options: dict[str, Any]) -> None:
    """Run the ``pyramidd_output_staged`` hook, with the pool's plugins."""
    from .. import plugins
    from ..options import BuildOptions

    loaded = plugins.load(getattr(pool, "disabled_plugins", ()))
    extra = {k: v for k, v in options.items() if k != "registry"}
    plugins.publish_staged(loaded.pm, staging, output, "graph-json", None,
                           BuildOptions(layout="graph-json", extra=extra))


# --------------------------------------------------------------------------- stages


def _first_error(group: BaseExceptionGroup) -> BaseException:
    """The error to report from a failed stage group: the first that is not a
    cancellation (the others were cancelled because of it)."""
    cancelled = anyio.get_cancelled_exc_class()
    flat: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        exc = stack.pop(0)
        if isinstance(exc, BaseExceptionGroup):
            stack.extend(exc.exceptions)
        else:
            flat.append(exc)
    real = [e for e in flat if not isinstance(e, cancelled)]
    return (real or flat or [group])[0]


def _load_chunks(paths: list[Path]) -> tuple[np.ndarray, np.ndarray, int]:
    nodes, edges, read = [], [], 0
    for path in paths:
        with np.load(path) as z:
            nodes.append(z["nodes"])
            edges.append(z["edges"])
            read = int(z["read"])
    return np.concatenate(nodes), np.concatenate(edges), read


def _load_bags(bags: list[Bag]) -> tuple[np.ndarray, np.ndarray]:
    loaded = [b.load() for b in bags]
    return (np.concatenate([n for n, _ in loaded]) if loaded else np.empty(0, NODE),
            np.concatenate([e for _, e in loaded]) if loaded else np.empty(0, EDGE))


def _write_consumed(spill: Path, n: int) -> None:
    tmp = spill / "consumed.tmp"
    tmp.write_text(str(n))
    os.replace(tmp, spill / "consumed")


class _Stages:
    """The read, insert and rework stages of one build."""

    def __init__(
        self, source: GraphSource, spill: Path, opts: GraphOptions, progress: Progress | None
    ) -> None:
        self.source = source
        self.spill = spill
        self.opts = opts
        self.progress = progress
        self.total_bytes = max(1, source.size)
        self.result: ReadResult | None = None
        self.read_done = anyio.Event()
        self.serial = 0

    async def run(self, pool: Any) -> tuple[ReadResult, GraphQuadtree]:
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._read, pool)
            bounds = await self._wait_bounds()
            tree = await self._insert_all(bounds)
        result = self.result
        assert result is not None
        final = pad_bounds(*result.bounds)  # type: ignore[misc]
        if final != tree.bounds:
            # A node came after the bounds were published (edges before some nodes in
            # the file): the chunks are all still on disk, so build the tree again.
            log.info("graph bounds grew after the first edge; inserting again",
                     first=tree.bounds, final=final)
            await anyio.to_thread.run_sync(tree.remove_files)
            tree = await self._insert_all(final)
        self._log_skips(result)
        return result, tree

    def _log_skips(self, result: ReadResult) -> None:
        for reason, count in result.skipped.items():
            log.warning("graph records skipped", reason=reason, count=count,
                        examples=result.examples.get(reason, []))

    async def _read(self, pool: Any) -> None:
        try:
            self.result = await pool.run(read_graph, self.source, str(self.spill), self.opts)
        finally:
            self.read_done.set()

    async def _wait_bounds(self) -> Rect:
        path = self.spill / "bounds.json"
        while True:
            if path.exists():
                raw = json.loads(await anyio.Path(path).read_text())
                return pad_bounds(*raw)
            if self.read_done.is_set():
                if self.result is None:  # the reader failed; its error is raised by the group
                    await anyio.sleep_forever()
                return pad_bounds(*self.result.bounds)  # type: ignore[misc]
            await anyio.sleep(0.01)

    async def _insert_all(self, bounds: Rect) -> GraphQuadtree:
        opts = self.opts
        tree = GraphQuadtree(
            bounds, bag_size=opts.bag_size, bags_per_leaf=opts.bags_per_leaf,
            max_depth=opts.max_depth, spill=self.spill / f"tree{self.serial}",
            budget=int(opts.memory_budget * BAG_SHARE),
        )
        self.serial += 1
        to_rework, rework_in = anyio.create_memory_object_stream[Any](REWORK_QUEUE)
        reworked_out, reworked = anyio.create_memory_object_stream[Any](math.inf)
        pending = 0

        async def reworker() -> None:
            async with rework_in, reworked_out:
                async for rw in rework_in:
                    token = await anyio.to_thread.run_sync(shed_rework, rw, tree.spill)
                    await reworked_out.send(token)

        async def insert(key: str, nodes: np.ndarray, edges: np.ndarray) -> None:
            nonlocal pending
            reworks = await anyio.to_thread.run_sync(tree.insert, key, nodes, edges)
            for rw in reworks:
                pending += 1
                await to_rework.send(rw)

        async def take_rework(token: tuple[str, list[Bag]]) -> None:
            nonlocal pending
            key, bags = token
            nodes, edges = await anyio.to_thread.run_sync(_load_bags, bags)
            await insert(key, nodes, edges)
            pending -= 1

        next_chunk = 0
        async with anyio.create_task_group() as tg:
            tg.start_soon(reworker)
            while True:
                try:  # rework first: it frees what it holds and keeps the tree settling
                    await take_rework(reworked.receive_nowait())
                    continue
                except anyio.WouldBlock:
                    pass
                ready = []
                while len(ready) < MERGE_CHUNKS and chunk_path(self.spill, next_chunk + len(ready)).exists():
                    ready.append(chunk_path(self.spill, next_chunk + len(ready)))
                if ready:
                    # Chunks waiting are inserted together: a walk down the tree costs
                    # about the same for one chunk as for several.
                    nodes, edges, read = await anyio.to_thread.run_sync(_load_chunks, ready)
                    await insert("", nodes, edges)
                    next_chunk += len(ready)
                    await anyio.to_thread.run_sync(_write_consumed, self.spill, next_chunk)
                    if self.progress:
                        self.progress(min(read, self.total_bytes), self.total_bytes)
                    continue
                done = self.read_done.is_set() and self.result is not None
                if done and next_chunk >= self.result.chunks and pending == 0:  # type: ignore[union-attr]
                    break
                if (done and next_chunk < self.result.chunks) or not self.spill.is_dir():  # type: ignore[union-attr]
                    # The reader wrote every chunk before it returned: one missing now
                    # was removed, and waiting for it would wait forever.
                    raise staging_removed(self.spill.parent)
                if pending:
                    # Only the wait may time out: a rework taken must be inserted whole.
                    token = None
                    with anyio.move_on_after(0.05):
                        token = await reworked.receive()
                    if token is not None:
                        await take_rework(token)
                else:
                    await anyio.sleep(0.01)
            await to_rework.aclose()
        await reworked.aclose()
        return tree


# --------------------------------------------------------------------------- writing


async def _write(
    pool: Any, tree: GraphQuadtree, result: ReadResult, out: Path, spill: Path,
    opts: GraphOptions, progress: Progress | None,
) -> dict[str, Any]:
    """Write every tree node's file: the leaves in Z-order while the cutoffs are made
    (each parent once its four children are done), then the sparse files of the
    internal nodes, which need the cutoffs of their whole level. Returns counts and
    the index entries."""
    counts = tree.subtree_counts()
    await anyio.to_thread.run_sync(tree.flush)
    assert result.store is not None
    store_root = result.store.root
    kept = spill / "sparse"
    kept.mkdir()
    total = len(tree.nodes)
    done = 0
    index: dict[str, dict[str, Any]] = {}
    totals = {"tiles": 0, "bytes": 0, "leaves": 0}
    # Two batches per worker in flight, so each task is worth its round trip and the
    # samples waiting for a parent are few.
    slots = anyio.Semaphore(2 * max(1, getattr(pool, "size", 2)))
    cap = opts.capacity

    def where(q: QNode) -> dict[str, Any]:
        return {"key": q.key, "rect": q.rect, "bounds": tree.bounds,
                "out": str(out / TILES_DIR / tile_name(q.key)), "store": store_root}

    def record(q: QNode, res: dict[str, Any] | None) -> None:
        nonlocal done
        done += 1
        entry = {"leaf": q.children is None, "stored": counts[q.key], "file": None,
                 "nodes": 0, "edges": 0, "bytes": 0}
        if res is not None:
            entry.update(file=f"{TILES_DIR}/{tile_name(q.key)}", nodes=res["nodes"],
                         edges=res["edges"], bytes=res["bytes"])
            totals["tiles"] += 1
            totals["bytes"] += res["bytes"]
        index[q.key] = entry
        if progress:
            progress(done, total)

    cutoffs = await _leaves_and_cutoffs(pool, tree, slots, cap, kept, where, record, totals)
    cutoffs_path = str(spill / "cutoffs.npz")
    await anyio.to_thread.run_sync(save_cutoffs, cutoffs_path, cutoffs)
    jobs = [
        (q, SparseJob(**where(q), admitted=str(kept / f"{q.key}.npy"), cutoffs=cutoffs_path))
        for q in _postorder(tree.root) if q.children is not None
    ]

    async def run_batch(batch: list[tuple[QNode, SparseJob]]) -> None:
        try:
            results = await pool.run(write_batch, [j for _, j in batch])
            for (q, _), res in zip(batch, results, strict=True):
                record(q, res)
        finally:
            slots.release()

    async with anyio.create_task_group() as tg:
        for start in range(0, len(jobs), BATCH_OBJECTS):
            await slots.acquire()
            tg.start_soon(run_batch, jobs[start:start + BATCH_OBJECTS])
    return {**totals, "index": dict(sorted(index.items()))}


async def _leaves_and_cutoffs(
    pool: Any, tree: GraphQuadtree, slots: anyio.Semaphore, cap: int, kept: Path,
    where: Callable[[QNode], dict[str, Any]], record: Callable[[QNode, Any], None],
    totals: dict[str, int],
) -> dict[str, Cutoff]:
    """First pass: every leaf's file, and every internal node's cutoff (its admitted
    objects kept in ``kept`` for its file). Returns the internal nodes' cutoffs."""
    events: dict[str, anyio.Event] = {}
    samples: dict[str, Any] = {}
    cutoffs: dict[str, Cutoff] = {}

    async def run_batch(batch: list[tuple[QNode, Job | None, anyio.Event]]) -> None:
        try:
            jobs = [j for _, j, _ in batch if j is not None]
            results = {r["key"]: r for r in (await pool.run(write_batch, jobs) if jobs else [])}
            for q, _, _ in batch:
                res = results.get(q.key)
                if res is not None and "sample" in res:
                    samples[q.key] = res.pop("sample")
                if q.children is None:
                    record(q, res)
                else:
                    cutoffs[q.key] = res["cutoff"]  # type: ignore[index]
        finally:
            slots.release()
            for _, _, event in batch:
                event.set()

    # Post-order (Z-order leaves, each parent right after its children) in batches of
    # consecutive nodes, so the samples waiting for a parent are few.
    async with anyio.create_task_group() as tg:
        batch: list[tuple[QNode, Job | None, anyio.Event]] = []
        in_batch: set[str] = set()
        weight = 0

        async def submit() -> None:
            nonlocal batch, weight
            if batch:
                await slots.acquire()
                tg.start_soon(run_batch, batch)
            batch, weight = [], 0
            in_batch.clear()

        for q in _postorder(tree.root):
            job: Job | None
            if q.children is None:
                totals["leaves"] += 1
                job = None
                if q.count:
                    job = LeafJob(**where(q), budget=cap, bags=tuple(
                        (b.path, b.offset, b.n_nodes, b.n_edges) for b in q.bags))
                else:  # an empty leaf: no file, nothing to sample
                    samples[q.key] = (np.empty(0, dtype=RANKED), None)
                size_of = q.count
            else:
                if not all(c.key in in_batch for c in q.children):
                    await submit()
                    for c in q.children:
                        await events[c.key].wait()
                job = CutJob(q.key, cap, str(kept / f"{q.key}.npy"), tuple(
                    None if c.key in in_batch and c.key not in samples else samples.pop(c.key)
                    for c in q.children
                ))
                for c in q.children:
                    del events[c.key]
                size_of = cap
            events[q.key] = anyio.Event()
            batch.append((q, job, events[q.key]))
            in_batch.add(q.key)
            weight += size_of
            if len(batch) >= BATCH_NODES or weight >= BATCH_OBJECTS * cap:
                await submit()
        await submit()
    samples.clear()
    return cutoffs


def _postorder(root: QNode) -> list[QNode]:
    """Tree nodes children first, in Z-order."""
    out: list[QNode] = []
    stack: list[tuple[QNode, bool]] = [(root, False)]
    while stack:
        q, expanded = stack.pop()
        if q.children is None or expanded:
            out.append(q)
        else:
            stack.append((q, True))
            stack.extend((c, False) for c in reversed(q.children))
    return out
