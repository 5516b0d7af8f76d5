"""One job, from a settled file in a drop folder to ``done/`` or ``failed/``.

The order of steps is what makes a kill -9 at any point recoverable (see
:mod:`.recovery`): the journal records the intent to claim before the rename, the
output is built in staging and renamed into place by the engine, the journal says
"built" before the input moves to ``done/``, and "closed" only after it moved.

A render worker that dies fails the attempt, which is retried up to ``retries``
times; any other error fails the job at once (the input will not get better). An
attempt that a service stop cut short counts too, so an input that kills the whole
service every time ends in ``failed/`` instead of in a restart loop.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import anyio
import structlog

from ..options import BuildOptions
from . import claim, crashpoints
from .config import ConfigError, ServiceConfig, WatchConfig
from .failure import Failure, from_exception
from .journal import JobRecord, Journal, new_job_id
from .metrics import Metrics
from .naming import inside, output_name
from .settle import Entry, unchanged
from .status import JobProgress, State

log = structlog.get_logger("pyramidd.service")


class BuildFn(Protocol):
    """The engine's ``build`` (or a stand-in with the same contract)."""

    def __call__(self, input: Path, output: Path, options: BuildOptions, *, pool: Any,
                 progress: Callable[[int, int], None] | None = None) -> Awaitable[Any]: ...


@dataclass(frozen=True)
class Candidate:
    """A settled file waiting in the queue, not yet claimed."""

    watch: str
    entry: Entry


class Checkpointed(Exception):
    """A job left claimed in the journal, with its attempt not counted, for the next
    start to redo."""


@dataclass
class Context:
    """What jobs share: the current config (replaced on reload), journal, pool, engine."""

    config: ServiceConfig
    journal: Journal
    pool: Any
    build: BuildFn
    metrics: Metrics
    state: State

    async def record(self, op: str, job_id: str, **fields: Any) -> None:
        """Append a journal entry (fsync'd, off the event loop)."""
        await anyio.to_thread.run_sync(functools.partial(self.journal.write, op, job_id, **fields))


def lstat_entry(path: Path) -> Entry | None:
    """The :class:`Entry` of ``path`` (links not followed), ``None`` if it is gone (or
    its name is too long to exist: a sidecar's of an input with a long name)."""
    import errno
    import stat

    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            return None
        raise
    return Entry(path.name, st.st_size, st.st_mtime, stat.S_ISREG(st.st_mode),
                 stat.S_ISLNK(st.st_mode))


async def take(ctx: Context, candidate: Candidate) -> JobRecord | None:
    """Claim a settled file: journal intent, rename into ``processing/``, journal it.

    ``None`` if the file changed, vanished, or its name is busy in ``processing/``.
    """
    try:
        watch = ctx.config.watch(candidate.watch)
    except KeyError:  # the watch was removed by a reload while the file waited
        return None
    name = candidate.entry.name
    now = await anyio.to_thread.run_sync(lstat_entry, watch.folder / name)
    if now is None or not unchanged(candidate.entry, now):
        return None  # it will be judged again when it settles anew
    if await anyio.to_thread.run_sync(os.path.lexists, watch.processing / name):
        return None  # an input of that name is still being built; taken on a later look
    job = JobRecord(id=new_job_id(), watch=watch.name, name=name, output=output_name(name))
    await anyio.to_thread.run_sync(ctx.journal.claim, job)
    crashpoints.hit("after-claim-intent", name)
    try:
        await anyio.to_thread.run_sync(claim.claim, watch, name)
    except (FileNotFoundError, FileExistsError):
        await ctx.record("closed", job.id)
        return None
    except (OSError, ConfigError):  # not moved (permissions, say): the intent is void
        await ctx.record("closed", job.id)
        raise
    await ctx.record("claimed", job.id)
    crashpoints.hit("after-claim", name)
    return replace(job, state="claimed")


async def run(ctx: Context, job: JobRecord) -> bool:
    """Build a claimed job with retries, then move its input; ``True`` if it succeeded.

    Cancellation (a stop past its deadline), or a worker lost while the service stops,
    leaves the job claimed in the journal with this attempt not counted, so the next
    start redoes it.
    """
    watch = ctx.config.watch(job.watch)
    progress = JobProgress(job.id, watch.name, job.name, job.output, attempt=job.attempts)
    ctx.state.running[job.id] = progress
    ctx.metrics.running.set(len(ctx.state.running))
    ctx.state.touch()
    started = time.monotonic()
    log.info("job started", job=job.id, watch=watch.name, input=job.name,
             output=str(watch.output / job.output), previous_attempts=job.attempts)
    try:
        try:
            summary, failure, attempts = await _attempts(ctx, watch, job, progress)
        except Checkpointed:
            return False
        progress.state = "finishing"
        with anyio.CancelScope(shield=True):  # a started move is finished, not abandoned
            if failure is None:
                await _succeed(ctx, watch, job, summary, attempts, time.monotonic() - started)
            else:
                await _fail(ctx, watch, job, failure, attempts)
        return failure is None
    finally:
        ctx.state.running.pop(job.id, None)
        ctx.metrics.running.set(len(ctx.state.running))
        ctx.state.touch()


async def _attempts(ctx: Context, watch: WatchConfig, job: JobRecord,
                    progress: JobProgress) -> tuple[Any, Failure | None, int]:
    input_path = watch.processing / job.name
    entry = await anyio.to_thread.run_sync(lstat_entry, input_path)
    if entry is not None and entry.symlink:
        return None, Failure("symlink", f"{job.name!r} is a symbolic link; links are not "
                             "followed"), job.attempts
    for suffix in watch.sidecars:
        side = await anyio.to_thread.run_sync(lstat_entry, watch.processing / (job.name + suffix))
        if side is not None and side.symlink:
            return None, Failure("symlink", f"its companion {job.name + suffix!r} is a symbolic "
                                 "link; links are not followed"), job.attempts
    if entry is not None and not entry.regular:
        return None, Failure("bad-input", f"{job.name!r} is not a regular file"), job.attempts
    max_attempts = ctx.config.retries + 1
    if job.attempts >= max_attempts:
        return None, Failure("service-stopped", f"the service stopped during each of "
                             f"{job.attempts} attempts to build it"), job.attempts
    output = inside(watch.output, job.output)
    n = job.attempts
    while True:
        n += 1
        progress.attempt, progress.state, progress.done, progress.total = n, "building", 0, 0
        progress.notices, progress.source_counters = {}, {}
        await ctx.record("attempt", job.id, n=n)
        ctx.metrics.attempts.labels(watch.name).inc()
        crashpoints.hit("after-attempt", job.name)
        try:
            summary = await _build_once(ctx, watch, job, input_path, output, progress)
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                # Stopped from outside: this attempt does not count against the input.
                await ctx.record("attempt", job.id, n=n - 1)
            raise
        except Exception as exc:  # every failure of a build is reported, none kills the service
            failure = from_exception(exc)
            if failure.kind == "internal":
                log.exception("build raised an unexpected error", job=job.id, input=job.name)
            if failure.retry and ctx.state.stopping:
                # A worker lost while the service stops (a signal to the whole group,
                # say) is no verdict on the input: checkpointed, as a stop would.
                await ctx.record("attempt", job.id, n=n - 1)
                log.warning("attempt failed while stopping: the job is redone at the next "
                            "start", job=job.id, input=job.name, error=failure.error)
                raise Checkpointed(job.id)
            if failure.retry and n < max_attempts:
                ctx.metrics.retries.labels(watch.name).inc()
                log.warning("attempt failed, retrying", job=job.id, watch=watch.name,
                            input=job.name, attempt=n, error=failure.error)
                progress.state = "retrying"
                continue
            return None, failure, n
        crashpoints.hit("after-build", job.name)
        return summary, None, n


class JobProgressCallback:
    """The progress callback of one attempt: tiles, and the source's notices (a warp
    falling back), go into the job's :class:`JobProgress`, so ``/status`` shows them
    while the job runs."""

    def __init__(self, ctx: Context, job: JobRecord, progress: JobProgress) -> None:
        self.ctx, self.job, self.progress = ctx, job, progress

    def __call__(self, done: int, total: int) -> None:
        """Tiles written so far of ``total``."""
        self.progress.done, self.progress.total = done, total
        self.ctx.state.touch()
        if total and done * 2 >= total:
            crashpoints.hit("mid-build", self.job.name)

    def notice(self, message: str, counters: Mapping[str, Any]) -> None:
        """Count the notice and keep the source's counters as of now."""
        notices = self.progress.notices
        notices[message] = notices.get(message, 0) + 1
        self.progress.source_counters = dict(counters)
        self.ctx.state.touch()
        log.info("source notice", job=self.job.id, watch=self.progress.watch,
                 input=self.job.name, notice=message, times=notices[message])


async def _build_once(ctx: Context, watch: WatchConfig, job: JobRecord, input_path: Path,
                      output: Path, progress: JobProgress) -> Any:
    if crashpoints.armed("worker-crash", job.name):
        await ctx.pool.run(crashpoints.die_in_worker)
    # A redo after a crash, or a new drop of the same name, replaces the earlier pyramid.
    options = replace(watch.options, extra={
        "memory_budget": ctx.config.memory_budget, **watch.options.extra, "replace": True})
    return await ctx.build(input_path, output, options, pool=ctx.pool,
                           progress=JobProgressCallback(ctx, job, progress))


def _summary_dict(summary: Any) -> dict[str, Any]:
    if summary is None:
        return {}
    if isinstance(summary, dict):
        data = dict(summary)
    elif hasattr(summary, "as_dict"):
        data = summary.as_dict()
    else:
        data = {k: getattr(summary, k) for k in ("levels", "tiles", "bytes", "seconds")
                if hasattr(summary, k)}
    # The job's own wall time (with moves and retries) is "seconds" in the job's log event.
    if "seconds" in data:
        data["build_seconds"] = round(data.pop("seconds"), 3)
    keys = ("levels", "tiles", "bytes", "build_seconds", "source_counters")
    return {k: data[k] for k in keys if k in data}


async def _succeed(ctx: Context, watch: WatchConfig, job: JobRecord, summary: Any,
                   attempts: int, seconds: float) -> None:
    data = _summary_dict(summary)
    await ctx.record("built", job.id, summary=data)
    crashpoints.hit("after-built", job.name)
    moved = await anyio.to_thread.run_sync(claim.finish_done, watch, job.name)
    crashpoints.hit("after-move", job.name)
    await ctx.record("closed", job.id)
    ctx.state.done += 1
    ctx.metrics.jobs.labels(watch.name, "done").inc()
    ctx.metrics.seconds.labels(watch.name).observe(seconds)
    ctx.metrics.tiles.labels(watch.name).inc(data.get("tiles", 0) or 0)
    ctx.metrics.bytes.labels(watch.name).inc(data.get("bytes", 0) or 0)
    source = data.get("source_counters") or {}
    ctx.metrics.source_bytes.labels(watch.name).inc(source.get("bytes_read", 0))
    ctx.metrics.source_fallbacks.labels(watch.name).inc(source.get("fallbacks", 0))
    log.info("job done", job=job.id, watch=watch.name, input=job.name,
             output=str(watch.output / job.output), moved_to=str(moved) if moved else None,
             attempts=attempts, seconds=round(seconds, 3), **data)


async def _fail(ctx: Context, watch: WatchConfig, job: JobRecord, failure: Failure,
                attempts: int) -> None:
    await ctx.record("failed", job.id, error=failure.to_dict())
    await finish_failed(watch, job, failure, attempts)
    crashpoints.hit("after-move", job.name)
    await ctx.record("closed", job.id)
    record_failure(ctx, watch, job, failure)
    log.warning("job failed", job=job.id, watch=watch.name, input=job.name, kind=failure.kind,
                error=failure.error, attempts=attempts)


async def finish_failed(watch: WatchConfig, job: JobRecord, failure: Failure,
                        attempts: int) -> Path | None:
    """Write the error report and move the input to ``failed/`` (also used by recovery)."""
    report = failure.report(
        input=job.name, watch=watch.name, job=job.id, attempts=attempts,
        failed_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        folder=str(watch.folder), failed=str(watch.failed))
    return await anyio.to_thread.run_sync(claim.finish_failed, watch, job.name, report)


def record_failure(ctx: Context, watch: WatchConfig, job: JobRecord, failure: Failure) -> None:
    """Count a failure and keep it for ``/status``."""
    ctx.state.failed += 1
    ctx.state.recent_failures.appendleft({
        "job": job.id, "watch": watch.name, "input": job.name, "kind": failure.kind,
        "error": failure.error, "at": time.time()})
    ctx.metrics.jobs.labels(watch.name, "failed").inc()
    ctx.metrics.failures.labels(watch.name, failure.kind).inc()

