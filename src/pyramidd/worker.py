"""The render worker process: its main loop and the tasks it runs.

A worker builds its own plugin manager at start, then runs tasks sent by the
coordinator over a pipe, one at a time: a task is a module-level function and its
arguments (plain, picklable data); pixels never travel in the pipe, only names of
shared-memory slots. A task arrives as ``(id, pickled (fn, args))``. Each reply is ``("ok", id, result)`` or ``("error", id, exc)``;
a task may also send ``("event", id, payload)`` progress messages and
``("log", None, event)`` log events before its reply.
"""

from __future__ import annotations

import functools
import os
import pickle
import signal
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from . import libc, malloc, shm
from .fastexit import exit_now
from . import plugins as plugin_loader
from .errors import PyramiddError
from .formats import RegionReader, Sink, Source
from .grid import Grid, TileKey
from .sources.raster import RasterSource, pixels_view
from .subtree import Region, assemble, build_subtree, crop, reduce_into

# --------------------------------------------------------------------------- process state

_conn: Connection | None = None
_task_id: int | None = None
_segments = shm.Attached()
#: Each build's source as this worker has it open: (its band, see _band_of; the reader).
_readers: dict[str, tuple[tuple[Any, Any], RegionReader]] = {}
#: The row stream of each banded build this worker decodes (see decode_band).
_streams: dict[str, Any] = {}
_disabled: tuple[str, ...] = ()
_worker_id = -1


def send_event(payload: dict[str, Any]) -> None:
    """Send a progress message for the running task to the coordinator."""
    if _conn is not None:
        _conn.send(("event", _task_id, payload))


def send_log(event: dict[str, Any]) -> None:
    """Forward a log event to the coordinator's log."""
    if _conn is not None:
        _conn.send(("log", None, {"worker": _worker_id, "pid": os.getpid(), **event}))


def ignore_stop_signals() -> None:
    """Leave stopping to the coordinator. Ctrl-C reaches the whole process group, and
    systemd stops a service by sending SIGTERM to every process of its control group:
    a worker that died of it would be taken for a crash, its task retried or its input
    failed. The coordinator stops workers itself, and they die with it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _die_with_parent() -> None:
    # If the coordinator is killed (-9), a worker must not linger rendering for nobody.
    prctl = libc.function("prctl")
    if prctl is not None:
        PR_SET_PDEATHSIG = 1
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def main_from_fd(fd: int, worker_id: int, disabled: str) -> None:
    """Entry point of a worker process started by :class:`~pyramidd.pool.WorkerPool`.

    Once :func:`main` has closed what the worker held, the process ends without the
    interpreter's teardown (:func:`~pyramidd.fastexit.exit_now`).
    """
    main(Connection(fd), worker_id, tuple(filter(None, disabled.split(","))))
    exit_now(0)


def main(conn: Connection, worker_id: int, disabled: tuple[str, ...]) -> None:
    """Entry point of a worker process."""
    global _conn, _task_id, _disabled, _worker_id
    _conn, _disabled, _worker_id = conn, disabled, worker_id
    ignore_stop_signals()
    _die_with_parent()
    malloc.tune()
    try:
        loaded = plugin_loader.load(disabled)
        loaded.pm.hook.pyramidd_worker_started(worker_id=worker_id)
    except BaseException as exc:  # report why this worker cannot start, then stop
        conn.send(("error", None, _picklable(exc)))
        return
    conn.send(("ready", None, os.getpid()))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            break
        if msg is None:
            break
        _task_id, task = msg
        try:
            fn, args = pickle.loads(task)
            result = fn(*args)
            reply = ("ok", _task_id, result)
        except BaseException as exc:
            reply = ("error", _task_id, _picklable(exc))
        try:
            conn.send(reply)
        except (BrokenPipeError, OSError):
            break
        _task_id = None
    for _, reader in _readers.values():
        reader.close()
    for stream in _streams.values():
        stream.close()
    _segments.close()


def _picklable(exc: BaseException) -> BaseException:
    """User errors travel as they are; anything else as a RuntimeError with its traceback."""
    if isinstance(exc, PyramiddError):
        return exc
    text = "".join(traceback.format_exception(exc)).rstrip()
    return RuntimeError(f"render worker {_worker_id} failed:\n{text}")


# --------------------------------------------------------------------------- helpers


class FlippedReader:
    """Reads a source upside down, for layouts whose rows count from the bottom."""

    def __init__(self, reader: RegionReader, height: int) -> None:
        self._reader = reader
        self._height = height

    def read_region(self, x: int, y: int, w: int, h: int) -> np.ndarray:
        return self._reader.read_region(x, self._height - y - h, w, h)[::-1]

    def close(self) -> None:
        self._reader.close()


def _reader(build_id: str, source: Source, flip_y: bool) -> RegionReader:
    """The source of a build, opened once per worker per build (once per band of a
    banded build: a new band's source replaces the last one's)."""
    band = _band_of(source)
    opened = _readers.get(build_id)
    if opened is not None and opened[0] == band:
        return opened[1]
    if opened is not None:
        _readers.pop(build_id)[1].close()
    reader = source.open()
    if hasattr(reader, "notify"):
        reader.notify = functools.partial(_source_notice, reader)
    if flip_y:
        reader = FlippedReader(reader, source.height)
    _readers[build_id] = (band, reader)
    return reader


def _band_of(source: Source) -> tuple[Any, Any]:
    # Only a banded build changes its source during a build; any other source is
    # unpickled afresh with every task and must not be reopened each time.
    return getattr(source, "segment", None), getattr(source, "first_row", None)


def _source_notice(reader: Any, message: str) -> None:
    """Forward a reader's mid-task news (a warp falling back) with its counters so far.

    Sent as an event of the running task, so it reaches the build's progress while
    the task is still running, not only with the task's result.
    """
    send_event({"notice": message, "worker": _worker_id, "counters": reader_counters(reader)})


#: Entry-point name of the plugin that registers the built-in formats.
BUILTIN_PLUGIN = "builtin"


def _resampler(name: str) -> Any:
    # Names are unique across plugins (the coordinator's registry, the same as this
    # worker's, refuses a second "box"), so a built-in name is the built-in resampler
    # unless that plugin is disabled; looking it up here spares the worker the
    # registry, which imports every format.
    if BUILTIN_PLUGIN not in _disabled:
        from .resamplers import BUILTINS

        for resampler in BUILTINS:
            if resampler.name == name:
                return resampler
    return plugin_loader.load(_disabled).registry.resampler(name)


def _slot(ref: shm.SlotRef, slot_bytes: int) -> np.ndarray:
    return shm.slot_array(_segments.get(ref.segment), slot_bytes, ref)


class TileWriter:
    """Writes finished tiles to the sink and reports progress now and then."""

    def __init__(self, grid: Grid, sink: Sink, flip_y: bool) -> None:
        self.grid, self.sink, self.flip_y = grid, sink, flip_y
        self.tiles = 0
        self.bytes = 0
        #: Tiles written since the last progress event: the task's result reports them.
        self.unreported = 0
        self._last = time.monotonic()

    def __call__(self, key: TileKey, region: Region) -> None:
        pixels = crop(region, self.grid.tile_rect(key))
        if self.flip_y:
            pixels = pixels[::-1]
        self.bytes += self.sink.write_tile(key, pixels)
        self.tiles += 1
        self.unreported += 1
        now = time.monotonic()
        if now - self._last > 0.2:
            send_event({"tiles": self.unreported})
            self.unreported, self._last = 0, now


# --------------------------------------------------------------------------- tasks


@dataclass(frozen=True)
class BuildContext:
    """What every task of one build needs; pickled with each task (it is small)."""

    build_id: str
    grid: Grid
    source: Source
    sink: Sink
    resampler: str
    flip_y: bool
    slot_bytes: int


@dataclass(frozen=True)
class TaskResult:
    """A task's output: the core it made (if any) and the tiles it wrote.

    ``counters`` are the source reader's own figures so far in this build, in this
    worker (a warp's reads and thrash fallbacks), when the reader keeps any.
    """

    ref: shm.SlotRef | None
    tiles: int
    bytes: int
    counters: dict[str, Any] | None = None
    #: Of ``tiles``, those no progress event has reported (one message fewer a task).
    unreported: int = 0


def reader_counters(reader: Any) -> dict[str, Any] | None:
    """A reader's optional ``counters`` (an object with ``as_dict()``, or a mapping)."""
    reader = getattr(reader, "_reader", reader)  # through FlippedReader
    counters = getattr(reader, "counters", None)
    if counters is None:
        return None
    return counters.as_dict() if hasattr(counters, "as_dict") else dict(counters)


def prepare_source(source: Any) -> Source:
    """Run a :class:`~pyramidd.formats.PreparedSource`'s ``prepare`` in this worker."""
    return source.prepare()


def decode_band(
    build_id: str, source: Any, band: RasterSource, previous: RasterSource | None
) -> None:
    """Fill ``band``'s segment with its rows of ``source``, a front-to-back image.

    Rows the previous band also holds are copied from its segment; the rest come
    from the build's row stream, opened in this worker on the first band and kept
    for the next (so every band of a build must be decoded by the same worker).
    """
    def rows_of(b: RasterSource) -> np.ndarray:
        return pixels_view(_segments.get(b.segment).buf, b.held_rows, b.width, b.bands)

    target = rows_of(band)
    start = band.first_row
    if previous is not None:
        shared = previous.first_row + previous.held_rows - start
        if shared > 0:
            target[:shared] = rows_of(previous)[start - previous.first_row :]
            start += shared
    if start >= band.first_row + band.held_rows:
        return  # all of it was in the previous band (the image ends within its halo)
    stream = _streams.get(build_id)
    if stream is None:
        if start > 0:  # the worker that held the stream was replaced
            raise RuntimeError("the decoder of a banded build lost its place in the image")
        stream = _streams[build_id] = source.stream()
    stream.read(target[start - band.first_row :])
    if band.first_row + band.held_rows >= band.height:
        _streams.pop(build_id).close()


def run_subtree(ctx: BuildContext, root: TileKey, out: shm.SlotRef) -> TaskResult:
    """Build ``root``'s subtree, write its tiles, leave the root's core in slot ``out``."""
    reader = _reader(ctx.build_id, ctx.source, ctx.flip_y)
    writer = TileWriter(ctx.grid, ctx.sink, ctx.flip_y)
    region = build_subtree(ctx.grid, root, reader, _resampler(ctx.resampler), writer)
    core = _store(ctx, crop(region, ctx.grid.core(root)), out)
    return TaskResult(core, writer.tiles, writer.bytes, reader_counters(reader),
                      writer.unreported)


def _store(ctx: BuildContext, pixels: np.ndarray, out: shm.SlotRef) -> shm.SlotRef:
    h, w, bands = pixels.shape
    ref = shm.SlotRef(out.segment, out.slot, h, w, bands)
    _slot(ref, ctx.slot_bytes)[...] = pixels
    return ref


def _regions(ctx: BuildContext, cores: list[tuple[TileKey, shm.SlotRef]]) -> list[Region]:
    return [Region(ctx.grid.core(k), _slot(ref, ctx.slot_bytes)) for k, ref in cores]


def merge_tile(
    ctx: BuildContext, key: TileKey, cores: list[tuple[TileKey, shm.SlotRef]], out: shm.SlotRef
) -> TaskResult:
    """Make ``key``'s core from the cores of the level above into slot ``out``."""
    resampler = _resampler(ctx.resampler)
    source = assemble(_regions(ctx, cores))
    region = reduce_into(ctx.grid, resampler, source, key.level, ctx.grid.core(key))
    return TaskResult(_store(ctx, region.pixels, out), 0, 0)


def emit_tile(
    ctx: BuildContext, key: TileKey, cores: list[tuple[TileKey, shm.SlotRef]]
) -> TaskResult:
    """Write tile ``key`` from its core and its neighbours' cores."""
    writer = TileWriter(ctx.grid, ctx.sink, ctx.flip_y)
    writer(key, assemble(_regions(ctx, cores)))
    return TaskResult(None, 1, writer.bytes, unreported=writer.unreported)


def forget_build(build_id: str, segments: tuple[str, ...]) -> None:
    """Close the build's source and detach its segments in this worker."""
    opened = _readers.pop(build_id, None)
    if opened is not None:
        opened[1].close()
    stream = _streams.pop(build_id, None)
    if stream is not None:
        stream.close()
    for name in segments:
        _segments.drop(name)


def ping() -> int:
    """Answer with this worker's pid (used to check a pool is alive)."""
    return os.getpid()
