"""The service as a whole: start-up, recovery, watchers, job runners, reload and stop.

Start: take the state folder's lock, replay the journal, sweep leftovers of dead
processes, open the render pool, serve HTTP, catch signals, finish or requeue what the
last run left open, arm one watcher per drop folder, then tell systemd READY=1.

Stop (SIGTERM): stop watching, stop taking queued files (they stay in their drop
folders), give running jobs ``stop_timeout`` seconds to finish, then cancel the
rest: they stay claimed in the journal and are redone at the next start.
"""

from __future__ import annotations

import collections
import dataclasses
import fcntl
import os
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import anyio
import structlog
from anyio.abc import TaskGroup, TaskStatus

from . import claim, logs, signals
from .config import ConfigError, ServiceConfig, WatchConfig, load_config, restart_needed
from .failure import Failure
from .jobs import BuildFn, Candidate, Context, finish_failed, record_failure, run, take
from .journal import JobRecord, Journal, JournalError
from .metrics import Metrics
from .notify import Notifier, pipeline_moves
from .recovery import Decision, scan, sweep_leftovers
from .status import State
from .watch import FolderWatcher

log = structlog.get_logger("pyramidd.service")

#: Seconds a runner waits after it could not claim an input: the journal could not be
#: written (a full state disk) or the input not moved (permissions changed, say).
CLAIM_RETRY = 5.0

PoolFactory = Callable[[int], AbstractAsyncContextManager[Any]]


def default_pool(workers: int, log_level: str = "info",
                 disabled_plugins: tuple[str, ...] = ()) -> AbstractAsyncContextManager[Any]:
    """The real render pool; every worker it starts, replacements of dead ones included,
    sends its log events to the service's log. Builds skip the pool's disabled plugins."""
    from ..pool import WorkerPool

    return WorkerPool(workers, on_log=logs.forward, disabled_plugins=disabled_plugins,
                      initializer=(logs.configure_worker, (log_level,)))


def default_build() -> BuildFn:
    """The engine's build."""
    from ..engine import build

    return build


class StateLocked(ConfigError):
    """Another service uses the same state folder."""


def lock_state_dir(state_dir: Path) -> int:
    """Create ``state_dir`` and hold its lock for the life of the process; return the fd."""
    state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(state_dir / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StateLocked(f"another pyramidd service uses the state folder {state_dir}: stop it,"
                          " or give this one its own state_dir") from None
    return fd


class Service:
    """One running service. ``build`` and ``pool_factory`` are seams for tests."""

    def __init__(self, config: ServiceConfig, *, build: BuildFn | None = None,
                 pool_factory: PoolFactory | None = None, notifier: Notifier | None = None,
                 loader: Callable[[Path], ServiceConfig] = load_config) -> None:
        self.config = config
        self.build = build
        self.pool_factory = pool_factory or (
            lambda n: default_pool(n, config.log.level, config.disabled_plugins))
        self.notifier = notifier or Notifier()
        self.loader = loader
        self.metrics = Metrics()
        self.state = State(config_path=str(config.path) if config.path else None)
        self.http_address: tuple[str, int] | None = None
        self._ctx: Context | None = None
        self._tg: TaskGroup | None = None
        self._stop_requested = False
        self._stop: anyio.Event | None = None
        self._stopping = False
        self._watch_scope: anyio.CancelScope | None = None
        self._intake: set[anyio.CancelScope] = set()
        self._redo: collections.deque[JobRecord] = collections.deque()
        self._pending: set[tuple[str, str]] = set()
        self._known_ids: set[str] = set()
        self._send: Any = None
        self._app: Any = None

    # ------------------------------------------------------------------ control

    def request_stop(self) -> None:
        """Begin a graceful stop; a second request skips the wait for running jobs."""
        if self._stop is None:  # not running yet
            self._stop_requested = True
            return
        if self._stop.is_set():
            log.warning("second stop request: checkpointing running jobs now")
            self._runner_scope.cancel()
        self._stop.set()

    async def reload(self) -> bool:
        """Reload the config file; a bad one is logged and the running config kept."""
        async with self._reload_lock:
            path = self.config.path
            if path is None or self._ctx is None:
                return False
            self.notifier.reloading()
            try:
                new = await anyio.to_thread.run_sync(self.loader, path)
            except ConfigError as exc:
                self.metrics.reloads.labels("rejected").inc()
                log.error("config reload rejected; the running config stays in force",
                          config=str(path), error=str(exc))
                self.notifier.ready(self.state.line())
                return False
            later = restart_needed(self.config, new)
            if later:
                log.warning("config keys that take effect only at the next start changed",
                            keys=later)
                # What runs keeps the values it started with, and /status says so.
                new = dataclasses.replace(new, **{k: getattr(self.config, k) for k in later})
            if new.log != self.config.log:
                logs.configure(new.log.level, new.log.format)
            watches_changed = new.watches != self.config.watches
            self.config = new
            self._ctx.config = new
            await self._restart_watchers()
            if watches_changed and self._app is not None:
                from .http import make_app

                self._app.app = make_app(self.state, self.metrics, self._refresh, new.watches)
            self.metrics.reloads.labels("ok").inc()
            log.info("config reloaded", config=str(path), watches=[w.name for w in new.watches])
            self.notifier.ready(self.state.line())
            return True

    # ------------------------------------------------------------------ life

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run until stopped; report ready (watchers armed) through ``task_status``."""
        # Events and scopes belong to the event loop, so they are made here, not in __init__.
        self._stop = anyio.Event()
        self._runner_scope = anyio.CancelScope()
        self._reload_lock = anyio.Lock()
        if self._stop_requested:
            self._stop.set()
        config = self.config
        async with anyio.create_task_group() as outer:
            # Signals first: a SIGTERM while the pool starts is a graceful stop too.
            await outer.start(signals.handle, self.request_stop, self.reload)
            lock_fd = await anyio.to_thread.run_sync(lock_state_dir, config.state_dir)
            journal = Journal(config.state_dir / "journal.jsonl")
            try:
                open_jobs = await anyio.to_thread.run_sync(journal.open)
                for watch in config.watches:  # recovery moves files into these
                    await anyio.to_thread.run_sync(claim.prepare, watch)
                removed = await anyio.to_thread.run_sync(sweep_leftovers, config)
                if removed["staging"] or removed["shm"]:
                    log.info("removed leftovers of dead processes", **removed)
                decisions = await anyio.to_thread.run_sync(scan, open_jobs, config)
                self._known_ids = set(open_jobs)
                build = self.build or default_build()
                async with self.pool_factory(config.workers) as pool:
                    self._ctx = Context(config, journal, pool, build, self.metrics, self.state)
                    await self._serve(decisions, task_status)
            finally:
                journal.close()
                os.close(lock_fd)
                self.notifier.close()
            outer.cancel_scope.cancel()

    async def _serve(self, decisions: list[Decision], task_status: TaskStatus[None]) -> None:
        assert self._ctx is not None
        config = self.config
        send, receive = anyio.create_memory_object_stream[Candidate](config.queue_size)
        self.state.capacity = config.queue_size
        self.metrics.queue_capacity.set(config.queue_size)
        self._send = send
        async with anyio.create_task_group() as tg:
            self._tg = tg
            if config.http.enabled:
                from .http import Swappable, make_app, serve

                self._app = Swappable(make_app(self.state, self.metrics, self._refresh,
                                               config.watches))
                self.http_address = await tg.start(serve, self._app, config.http.host,
                                                   config.http.port, config.state_dir)
                log.info("HTTP server listening", url=f"http://{self._url_host()}/status")
            await self._recover(decisions)
            runners_done = anyio.Event()
            tg.start_soon(self._runners, receive, runners_done)
            await self._restart_watchers()
            tg.start_soon(self._heartbeat)
            self.state.ready = True
            self.metrics.ready.set(1)
            self.notifier.ready(self.state.line())
            log.info("ready", watches=[w.name for w in config.watches], pid=os.getpid())
            task_status.started()

            await self._stop.wait()
            await self._shutdown(runners_done)
            tg.cancel_scope.cancel()

    def _url_host(self) -> str:
        assert self.http_address is not None
        host, port = self.http_address
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    async def _shutdown(self, runners_done: anyio.Event) -> None:
        self._stopping = True
        self.state.stopping = True
        self.metrics.ready.set(0)
        self.notifier.stopping()
        running = len(self.state.running)
        log.info("stopping", running=running, deadline=self.config.stop_timeout)
        if self._watch_scope is not None:
            self._watch_scope.cancel()
        for scope in list(self._intake):
            scope.cancel()
        with anyio.move_on_after(self.config.stop_timeout):
            await runners_done.wait()
        if not runners_done.is_set():
            log.warning("stop deadline reached: running jobs are checkpointed and redone at "
                        "the next start", jobs=list(self.state.running))
            self._runner_scope.cancel()
            await runners_done.wait()
        log.info("stopped", done=self.state.done, failed=self.state.failed)

    # ------------------------------------------------------------------ recovery

    async def _recover(self, decisions: list[Decision]) -> None:
        ctx = self._ctx
        assert ctx is not None
        for d in decisions:
            self.metrics.recovered.labels(d.action).inc()
            if d.action != "release":
                log.info("recovering job", job=d.job.id, watch=d.job.watch, input=d.job.name,
                         action=d.action, reason=d.reason)
            try:
                await self._apply(d)
            except OSError as exc:  # e.g. done/ unwritable: keep the job open, try next start
                log.error("could not recover job; it stays open", job=d.job.id,
                          input=d.job.name, action=d.action, error=str(exc))

    async def _apply(self, d: Decision) -> None:
        """Carry out one recovery decision."""
        ctx = self._ctx
        assert ctx is not None
        job = d.job
        if d.action == "release":
            await ctx.record("closed", job.id)
        elif d.action == "redo":
            if job.id not in self._known_ids:  # adopted: no journal entry yet
                await anyio.to_thread.run_sync(ctx.journal.claim, job)
            elif job.state == "claiming":  # the rename happened; the journal did not hear
                await ctx.record("claimed", job.id)
            self._redo.append(job)
        elif d.action == "finish-done":
            watch = ctx.config.watch(job.watch)
            moved = await anyio.to_thread.run_sync(claim.finish_done, watch, job.name)
            await ctx.record("closed", job.id)
            self.state.done += 1
            # The job's one summary event: the run that built it died before logging it.
            log.info("job done", job=job.id, watch=watch.name, input=job.name,
                     output=str(watch.output / job.output), recovered=True,
                     moved_to=str(moved) if moved else None, attempts=job.attempts,
                     **(job.summary or {}))
        elif d.action == "finish-failed":
            watch = ctx.config.watch(job.watch)
            error = job.error or {"kind": "internal", "error": "unknown"}
            failure = Failure(error.get("kind", "internal"), error.get("error", ""))
            await finish_failed(watch, job, failure, job.attempts)
            await ctx.record("closed", job.id)
            record_failure(ctx, watch, job, failure)
            log.warning("job failed", job=job.id, watch=watch.name, input=job.name,
                        kind=failure.kind, error=failure.error, attempts=job.attempts,
                        recovered=True)

    # ------------------------------------------------------------------ runners

    async def _runners(self, receive: Any, done: anyio.Event) -> None:
        try:
            with self._runner_scope:
                async with anyio.create_task_group() as tg:
                    for _ in range(self.config.jobs):
                        tg.start_soon(self._runner, receive)
        finally:
            done.set()

    async def _next(self, receive: Any) -> JobRecord | Candidate | None:
        if self._stopping:
            return None
        if self._redo:
            return self._redo.popleft()
        with anyio.CancelScope() as scope:
            self._intake.add(scope)
            try:
                return await receive.receive()
            except anyio.EndOfStream:
                return None
            finally:
                self._intake.discard(scope)
        return None

    async def _runner(self, receive: Any) -> None:
        ctx = self._ctx
        assert ctx is not None
        while (item := await self._next(receive)) is not None:
            if isinstance(item, Candidate):
                key = (item.watch, item.entry.name)
                try:
                    job = await take(ctx, item)
                except (OSError, ConfigError) as exc:  # JournalError too
                    # The file stays in the drop folder and is offered again by a
                    # later look; meanwhile nothing is claimed that cannot be journaled
                    # or moved, and the service goes on.
                    what = ("the job journal cannot be written" if isinstance(exc, JournalError)
                            else "it cannot be moved into processing/")
                    log.error(f"cannot claim an input: {what}", watch=item.watch,
                              input=item.entry.name, error=str(exc), retry_in=CLAIM_RETRY)
                    await anyio.sleep(CLAIM_RETRY)
                    continue
                finally:
                    self._pending.discard(key)
                if job is None:
                    continue
            else:
                job = item
            try:
                ctx.config.watch(job.watch)
            except KeyError:
                log.warning("job kept open: its watch is no longer configured", job=job.id,
                            watch=job.watch)
                continue
            try:
                await run(ctx, job)
            except Exception:  # a bug must not take the service down; the journal keeps the job
                log.exception("job stopped by an unexpected error; it stays claimed and is "
                              "redone at the next start", job=job.id, input=job.name)

    # ------------------------------------------------------------------ watchers

    async def _restart_watchers(self) -> None:
        assert self._tg is not None
        if self._watch_scope is not None:
            self._watch_scope.cancel()
        self.state.watches = [
            {"name": w.name, "folder": str(w.folder), "output": str(w.output),
             "patterns": list(w.patterns), "settle_time": w.settle_time}
            for w in self.config.watches
        ]
        self._watch_scope = await self._tg.start(self._watchers, self.config.watches)

    async def _watchers(self, watches: tuple[WatchConfig, ...], *,
                        task_status: TaskStatus[anyio.CancelScope]) -> None:
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                for watch in watches:
                    watcher = FolderWatcher(watch, self._send, self._pending,
                                            self.config.rescan_interval)
                    await tg.start(watcher.run)
                task_status.started(scope)

    # ------------------------------------------------------------------ heartbeat

    def _refresh(self) -> None:
        """Bring the gauges and the waiting count up to date."""
        used = self._send.statistics().current_buffer_used if self._send is not None else 0
        self.state.waiting = used + len(self._redo)
        self.metrics.waiting.set(self.state.waiting)
        pool = self._ctx.pool if self._ctx else None
        restarts = getattr(pool, "restarts", 0)
        self.state.worker_restarts = restarts
        self.metrics.worker_restarts.set(restarts)

    async def _heartbeat(self) -> None:
        """STATUS= when it changes, WATCHDOG=1 while the pipeline moves."""
        period = (self.notifier.watchdog_usec or 0) / 1e6
        tick = min(1.0, period / 4) if period else 1.0
        last_status = ""
        last_ping = 0.0
        stalled = False
        while True:
            self._refresh()
            line = self.state.line()
            if line != last_status:
                self.notifier.status(line)
                last_status = line
            now = time.monotonic()
            if period and now - last_ping >= period / 2:
                moves = pipeline_moves(now, self.state.busy, self.state.last_activity, period)
                if moves:
                    self.notifier.watchdog()
                    last_ping = now
                elif not stalled:
                    log.error("pipeline stalled: no job progressed for a watchdog period; "
                              "withholding WATCHDOG=1", running=list(self.state.running))
                stalled = not moves
            await anyio.sleep(tick)
