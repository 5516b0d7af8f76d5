"""The coordinator of one raster pyramid build.

It opens the input through the source plugins, asks the sink for the layout,
plans the builder level, hands Morton-ordered subtrees to the workers through the
stealing scheduler (one lane per worker; each lane asks for the next subtree only
when its worker is free, so the queue to each worker is bounded to one task), and
makes the levels below the builders topologically from their roots. It waits; it
never decodes, resamples or encodes: that happens in the workers.
"""

from __future__ import annotations

import math
import secrets
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Protocol

import anyio

from . import bands, planner, shm
from . import plugins as plugin_loader
from . import worker as tasks
from .errors import ImageTooLarge, PyramiddError, UnsupportedInput
from .formats import Sink, Source
from .grid import Grid, TileKey
from .options import BuildOptions
from .pool import WorkerPool
from .progress import pass_notice
from .scheduler import StealingScheduler
from .sinks.staging import Staging
from .sources.raster import RasterSource
from .toplevels import Task, TopLevels

Progress = Callable[[int, int], None]
"""Called with (tiles written, tiles in all) as the build goes; one that also has a
``notice`` method hears the source's news too (:class:`~.progress.NoticeReceiver`)."""


#: The layout of graph pyramids; any input a graph source reads is built as one.
GRAPH_LAYOUT = "graph-json"


@dataclass(frozen=True)
class BuildSummary:
    """What a finished build wrote.

    ``tiles`` counts files (tiles of a raster pyramid, leaf and sparse files of a graph
    pyramid). ``details`` holds what only one kind has: for rasters ``width``,
    ``height``, ``builder_level``, ``subtrees``, ``steals``; for graphs ``nodes``,
    ``edges``, ``leaves`` and the rest of the graph build's summary.
    """

    input: str
    output: str
    layout: str
    levels: int
    tiles: int
    bytes: int
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)
    #: What the source has to tell the user (a warp's GCP residuals), if anything.
    source_report: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain dict, details flattened in, for logs, hooks and JSON."""
        data = asdict(self)
        return {**data.pop("details"), **data}


async def _build_graph(
    input: Path,
    output: Path,
    options: BuildOptions,
    pool: WorkerPool,
    progress: Progress | None,
    registry: Any,
    started: float,
    raster_error: UnsupportedInput | None,
) -> BuildSummary:
    """Build a graph pyramid (see :mod:`pyramidd.graph`)."""
    from .graph import build as graph_build

    if await anyio.to_thread.run_sync(graph_build.probe, input, registry) is None:
        if raster_error is not None:
            raise raster_error
        raise UnsupportedInput(f"{input.name}: not a graph format any installed plugin reads")
    result = await graph_build.build_graph(
        input, output, {**options.extra, "registry": registry}, pool=pool, progress=progress
    )
    core = {"levels", "tiles", "bytes", "seconds", "output"}
    return BuildSummary(
        input=str(input),
        output=str(result.get("output", output)),
        layout=GRAPH_LAYOUT,
        levels=int(result.get("levels", 0)),
        tiles=int(result.get("tiles", 0)),
        bytes=int(result.get("bytes", 0)),
        seconds=time.monotonic() - started,
        details={k: v for k, v in result.items() if k not in core},
    )


def _report(source: Any) -> str | None:
    """A source's optional ``report()``: human-readable facts about how it read the input."""
    report = getattr(source, "report", None)
    return report() if callable(report) else None


def _is_prepared(source: Any) -> bool:
    return callable(getattr(source, "prepare", None)) and callable(getattr(source, "release", None))


async def build(
    input: Path,
    output: Path,
    options: BuildOptions,
    *,
    pool: WorkerPool,
    progress: Progress | None = None,
) -> BuildSummary:
    """Build the pyramid of ``input`` at ``output``; the output appears whole or not at all.

    Raster source formats are asked first; an input none of them reads but a graph
    source does (or any input with ``layout="graph-json"``) becomes a graph pyramid.
    """
    options.check()
    started = time.monotonic()
    loaded = plugin_loader.load(pool.disabled_plugins)
    registry = loaded.registry
    source: Source | None = None
    unsupported: UnsupportedInput | None = None
    if options.layout != GRAPH_LAYOUT:
        try:
            source = await anyio.to_thread.run_sync(registry.probe, input, options)
        except UnsupportedInput as exc:
            if not registry.of_kind("graph-source"):
                raise
            unsupported = exc
    if source is None:
        return await _build_graph(input, output, options, pool, progress, registry, started,
                                  unsupported)
    sink_format = registry.sink(options.layout)
    resampler = registry.resampler(options.resampler)
    rules = sink_format.rules(options)
    if source.width * source.height > options.max_pixels:
        raise ImageTooLarge(
            f"{input.name}: {source.width}x{source.height} is {source.width * source.height:,}"
            f" pixels, over the limit of {options.max_pixels:,}; raise --max-pixels to allow it"
            " (max_pixels in the service's configuration)"
        )
    grid = Grid(source.width, source.height, rules.tile_size, rules.overlap, rules.depth)
    budget = bands.memory_budget(options)
    banded = _band_plan(source, grid, budget, pool.size, resampler.support, rules.flip_y)
    if banded is None and _is_prepared(source):
        _check_decode_budget(input.name, source, budget)
    sink = await anyio.to_thread.run_sync(sink_format.create, output, grid, source, options)
    hook = loaded.pm.hook
    hook.pyramidd_build_started(input=input, output=output, layout=options.layout)
    build_id = secrets.token_hex(8)
    prepared: Source = source
    band_segments: list[str] = []
    try:
        await anyio.to_thread.run_sync(sink.start)
        if banded is not None:
            prepared = _band_slots(source, grid, banded, band_segments)
            plan = banded.plan
        else:
            if _is_prepared(source):
                # Shielded: release() must not run while a worker may still create what
                # it would release (a decode into shared memory, say).
                with anyio.CancelScope(shield=True):
                    prepared = await pool.run(tasks.prepare_source, source)
            plan = planner.plan(grid, pool.size)
        slot_bytes = rules.tile_size * rules.tile_size * prepared.bands
        ctx = tasks.BuildContext(
            build_id, grid, prepared, sink, resampler.name, rules.flip_y, slot_bytes
        )
        slots = _slot_pool(grid, plan, slot_bytes)
        feed: _Feed = (
            _Subtrees(ctx, plan, pool.size) if banded is None
            else _Bands(ctx, banded, pool, source, band_segments)
        )
        try:
            counts = await _render(ctx, pool, slots, feed, resampler.support, progress,
                                   _write_back_of(sink))
        finally:
            with anyio.CancelScope(shield=True):
                await _forget(pool, build_id, (slots.name, *band_segments))
                slots.close()
        await anyio.to_thread.run_sync(_staged_hook, loaded.pm, sink, grid, options)
        await anyio.to_thread.run_sync(sink.finish)
    except BaseException as exc:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(sink.abort)
            hook.pyramidd_build_finished(
                input=input, output=output, layout=options.layout, summary=None, error=str(exc)
            )
        raise
    finally:
        for name in band_segments:
            shm.unlink(name)
        if _is_prepared(source):
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(source.release)  # type: ignore[attr-defined]
    steals, tiles, nbytes, source_counters = counts
    summary = BuildSummary(
        input=str(input),
        output=str(sink.output),
        layout=options.layout,
        levels=len(grid.levels()),
        tiles=tiles,
        bytes=nbytes,
        seconds=time.monotonic() - started,
        details={
            "width": grid.width,
            "height": grid.height,
            "builder_level": plan.builder_level,
            "subtrees": len(plan.subtrees),
            "steals": steals,
            **({"bands": len(banded.bands)} if banded is not None else {}),
            **({"source_counters": source_counters} if source_counters else {}),
        },
        source_report=_report(source),
    )
    hook.pyramidd_build_finished(
        input=input, output=output, layout=options.layout, summary=summary.as_dict(), error=None
    )
    return summary


def _staged_hook(pm: Any, sink: Any, grid: Grid, options: BuildOptions) -> None:
    """Let plugins add files (a viewer page) to a sink that builds in a staging folder."""
    staging = getattr(sink, "staging", None)
    if isinstance(staging, Staging):
        plugin_loader.publish_staged(pm, staging, sink.output, options.layout, grid, options)


def _slot_pool(grid: Grid, plan: planner.Plan, slot_bytes: int) -> shm.SlotPool:
    """Slots for every core at or below the builder level at once.

    Pages of /dev/shm are only backed when touched, and freed slots are reused
    first, so the size is an upper bound, not what the build uses.
    """
    levels = range(grid.min_level, plan.builder_level + 1)
    cores = sum(c * r for c, r in map(grid.tiles_across, levels))
    return shm.SlotPool(slot_bytes, cores + 1)


async def _forget(pool: WorkerPool, build_id: str, segments: tuple[str, ...]) -> None:
    """Tell every worker the build is over, without waiting long for busy ones.

    Workers close the build's source and detach its segments, so unlinked shared
    memory is really given back.
    """
    with anyio.move_on_after(10):
        async with anyio.create_task_group() as tg:
            for i in range(pool.size):
                tg.start_soon(
                    lambda i=i: pool.run(tasks.forget_build, build_id, segments, worker=i)
                )


def sum_counters(per_worker: Any) -> dict[str, Any]:
    """Counters of all workers' readers: counts add up, other figures take the largest."""
    total: dict[str, Any] = {}
    for counters in per_worker:
        for key, value in counters.items():
            if not isinstance(value, (int, float)):
                continue
            if key in total and (key.endswith(("_level", "_ratio")) or isinstance(value, float)):
                total[key] = max(total[key], value)
            else:
                total[key] = total.get(key, 0) + value
    return total


def primary_error(group: BaseExceptionGroup) -> BaseException:
    """The error a caller should see from a failed task group: a user error first,
    else the first real error; cancellation only if nothing else went wrong."""
    leaves: list[BaseException] = []

    def walk(g: BaseExceptionGroup) -> None:
        for exc in g.exceptions:
            walk(exc) if isinstance(exc, BaseExceptionGroup) else leaves.append(exc)

    walk(group)
    cancelled = anyio.get_cancelled_exc_class()
    for wanted in (PyramiddError, Exception):
        for exc in leaves:
            if isinstance(exc, wanted) and not isinstance(exc, cancelled):
                return exc
    return group


class _Feed(Protocol):
    """Where the lanes of :func:`_render` get their subtrees."""

    builder_level: int
    steals: int

    async def run(self) -> None:
        """Work that makes subtrees ready (decoding bands); returns when all are out."""

    async def next(self, worker: int) -> tuple[tasks.BuildContext, TileKey] | None:
        """The next subtree for ``worker`` and the context to build it in; ``None``
        when there are no more."""

    def done(self, root: TileKey) -> None:
        """``root``'s subtree is built."""


class _Subtrees:
    """Every subtree at once, handed out by the stealing scheduler."""

    def __init__(self, ctx: tasks.BuildContext, plan: planner.Plan, workers: int) -> None:
        self.ctx, self.plan = ctx, plan
        self.builder_level = plan.builder_level
        weights = [planner.subtree_tiles(ctx.grid, root) for root in plan.subtrees]
        self.scheduler = StealingScheduler(len(plan.subtrees), workers, weights)

    @property
    def steals(self) -> int:
        return self.scheduler.steals

    async def run(self) -> None:
        pass

    async def next(self, worker: int) -> tuple[tasks.BuildContext, TileKey] | None:
        index = self.scheduler.next(worker)
        return None if index is None else (self.ctx, self.plan.subtrees[index])

    def done(self, root: TileKey) -> None:
        pass


class _Bands:
    """Subtrees a band at a time, as worker 0 decodes the bands into two slots.

    Band ``b`` goes into slot ``b % 2`` once every subtree of band ``b - 2`` (the
    slot's last tenant) is built; its subtrees are handed out in order as soon as it
    is decoded, so the workers build band ``b`` while band ``b + 1`` is decoded.
    """

    steals = 0

    def __init__(
        self,
        ctx: tasks.BuildContext,
        plan: bands.BandPlan,
        pool: WorkerPool,
        source: Source,
        segments: list[str],
    ) -> None:
        self.ctx, self.plan, self.pool, self.source = ctx, plan, pool, source
        self.segments = segments
        self.builder_level = plan.plan.builder_level
        self.band_of = {root: b for b, band in enumerate(plan.bands) for root in band.subtrees}
        self.left = [len(band.subtrees) for band in plan.bands]
        self.built = [anyio.Event() for _ in plan.bands]
        self.send, self.receive = anyio.create_memory_object_stream[
            tuple[tasks.BuildContext, TileKey]
        ](math.inf)

    async def run(self) -> None:
        previous: RasterSource | None = None
        template: RasterSource = self.ctx.source  # type: ignore[assignment]
        async with self.send:
            for b, band in enumerate(self.plan.bands):
                if b >= 2:
                    await self.built[b - 2].wait()
                slot = replace(
                    template, segment=self.segments[b % 2], first_row=band.y0, rows=band.rows
                )
                await self.pool.run(
                    tasks.decode_band, self.ctx.build_id, self.source, slot, previous, worker=0
                )
                previous = slot
                ctx = replace(self.ctx, source=slot)
                for root in band.subtrees:
                    await self.send.send((ctx, root))

    async def next(self, worker: int) -> tuple[tasks.BuildContext, TileKey] | None:
        try:
            return await self.receive.receive()
        except anyio.EndOfStream:
            return None

    def done(self, root: TileKey) -> None:
        b = self.band_of[root]
        self.left[b] -= 1
        if self.left[b] == 0:
            self.built[b].set()


def _band_plan(
    source: Source, grid: Grid, budget: int, workers: int, support: int, flip_y: bool
) -> bands.BandPlan | None:
    """The bands to build ``source`` in within ``budget`` bytes, if it decodes front to
    back and is large enough to build in bands (:func:`bands.should_band`); else
    ``None``."""
    if getattr(source, "stream_kind", None) is None:
        return None
    if not bands.should_band(grid.width * grid.height * source.bands, budget):
        return None
    return bands.plan(grid, workers, budget, source.bands, support, flip_y)


def _check_decode_budget(name: str, source: Any, budget: int) -> None:
    """Refuse a source decoded whole whose decode would take more than ``budget``: a
    few hundred bytes of CMYK JPEG or GIF header can ask for tens of GiB, which the
    kernel's OOM killer, not the build, would then deal with."""
    need = getattr(source, "decode_bytes", None)
    if need is None or need <= budget:
        return
    raise ImageTooLarge(
        f"{name}: decoding it whole takes {need / 2**20:,.0f} MiB, over the memory budget of"
        f" {budget / 2**20:,.0f} MiB; raise --memory-budget (memory_budget in the service's"
        " configuration), or convert it to a tiled TIFF, which is read region by region"
    )


def _band_slots(
    source: Source, grid: Grid, plan: bands.BandPlan, names: list[str]
) -> RasterSource:
    """Create the two band segments, adding their names to ``names`` (the caller
    unlinks them); return the raster source every band is a copy of, with its own
    segment and rows."""
    nbytes = bands.slot_bytes(grid, plan.bands, source.bands)
    path = Path(getattr(source, "path", "input"))
    shm.check_room(path.name, 2 * nbytes)
    for _ in range(2):
        segment = shm.create(nbytes)
        names.append(segment.name)
        segment.close()
    return RasterSource(names[0], grid.width, grid.height, source.bands, path,
                        first_row=0, rows=plan.slot_rows)


def _write_back_of(sink: Sink) -> Callable[[], None] | None:
    """Early write-back of a sink's staging folder (see :func:`_render`), if it has one."""
    staging = getattr(sink, "staging", None)
    return staging.write_back if isinstance(staging, Staging) else None


async def _render(
    ctx: tasks.BuildContext,
    pool: WorkerPool,
    slots: shm.SlotPool,
    feed: _Feed,
    support: int,
    progress: Progress | None,
    write_back: Callable[[], None] | None = None,
) -> tuple[int, int, int, dict[str, Any]]:
    """Run the subtrees ``feed`` hands out and the top levels; return (steals, tiles,
    bytes, source counters summed over the workers).

    ``write_back`` runs (in a thread) once the first worker has no subtree left: the
    tiles written so far go to disk while the other workers finish theirs and the
    top levels are built, instead of all of them in the commit's ``syncfs`` after.
    """
    grid: Grid = ctx.grid
    top = TopLevels(grid, feed.builder_level, support)
    total = grid.tile_count()
    cores: dict[TileKey, shm.SlotRef] = {}
    state = {"tiles": 0, "reported": 0, "bytes": 0, "written_back": 0}
    counters: dict[int, dict[str, Any]] = {}  # each worker's reader, latest figures

    def report(n: int) -> None:
        state["reported"] += n
        if progress is not None:
            progress(min(state["reported"], total), total)

    def on_event(payload: dict[str, Any]) -> None:
        report(payload.get("tiles", 0))
        if "notice" in payload:  # a reader's news mid-task, e.g. a warp falling back
            if payload.get("counters"):
                counters[payload["worker"]] = payload["counters"]
            pass_notice(progress, payload["notice"], sum_counters(counters.values()))

    def new_slot() -> shm.SlotRef:
        return shm.SlotRef(slots.name, slots.take(), 0, 0, 0)

    try:
        async with anyio.create_task_group() as tg:

            def core_ready(key: TileKey, ref: shm.SlotRef) -> None:
                cores[key] = ref
                for task in top.add(key):
                    tg.start_soon(run_top, task)

            async def lane(i: int) -> None:
                while (item := await feed.next(i)) is not None:
                    task_ctx, root = item
                    result = await pool.run(
                        tasks.run_subtree, task_ctx, root, new_slot(), worker=i, on_event=on_event
                    )
                    feed.done(root)
                    state["tiles"] += result.tiles
                    state["bytes"] += result.bytes
                    report(result.unreported)
                    if result.counters:
                        counters[i] = result.counters
                    core_ready(root, result.ref)
                if write_back is not None and not state["written_back"]:
                    state["written_back"] = 1
                    tg.start_soon(anyio.to_thread.run_sync, write_back)

            async def run_top(task: Task) -> None:
                used = [(k, cores[k]) for k in top.inputs(task)]
                if task.kind == "merge":
                    result = await pool.run(tasks.merge_tile, ctx, task.key, used, new_slot())
                else:
                    result = await pool.run(tasks.emit_tile, ctx, task.key, used)
                    state["tiles"] += result.tiles
                    state["bytes"] += result.bytes
                    report(result.unreported)
                for key in top.done(task):
                    slots.give(cores.pop(key).slot)
                if task.kind == "merge":
                    core_ready(task.key, result.ref)

            tg.start_soon(feed.run)
            for i in range(pool.size):
                tg.start_soon(lane, i)
    except BaseExceptionGroup as group:
        raise primary_error(group) from None
    if state["tiles"] != total or not top.complete():
        raise RuntimeError(
            f"internal error: wrote {state['tiles']} of {total} tiles"
            f" ({len(top.finished)} of {top.total()} top-level tasks)"
        )
    return feed.steals, state["tiles"], state["bytes"], sum_counters(counters.values())


def build_sync(
    input: Path,
    output: Path,
    options: BuildOptions,
    *,
    progress: Progress | None = None,
    disabled_plugins: tuple[str, ...] = (),
) -> BuildSummary:
    """One-shot :func:`build` with its own worker pool (``options.workers`` workers)."""

    async def main() -> BuildSummary:
        async with WorkerPool(options.workers, disabled_plugins=disabled_plugins) as pool:
            return await build(input, output, options, pool=pool, progress=progress)

    return anyio.run(main)
