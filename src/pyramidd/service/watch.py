"""Watching one drop folder: inotify events through watchfiles, a scan at start, rescans.

Events only say "look again": each look lists the folder and applies the settle rules
(:func:`.settle.plan`) to what it finds, so a lost event (inotify queue overflow, a
network filesystem that never sends any) costs at most one ``rescan_interval``.
Settled files go into the shared job queue; when it is full, sending waits, and the
folder itself is the backlog: nothing is held in memory for a file not yet queued.
"""

from __future__ import annotations

import os
import secrets
import stat
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import structlog
from anyio.abc import ObjectSendStream, TaskStatus
from watchfiles import awatch

from . import claim
from .config import ConfigError, WatchConfig
from .jobs import Candidate
from .settle import Entry, Seen, plan

log = structlog.get_logger("pyramidd.service")


def list_folder(folder: Path) -> list[Entry]:
    """Every name in ``folder`` with its ``lstat`` (blocking; names vanishing meanwhile are skipped)."""
    entries = []
    with os.scandir(folder) as it:
        for d in it:
            try:
                st = d.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            entries.append(Entry(d.name, st.st_size, st.st_mtime, stat.S_ISREG(st.st_mode),
                                 stat.S_ISLNK(st.st_mode)))
    return entries


def _folder_error(exc: BaseException) -> BaseException | None:
    """The folder's error (:class:`ConfigError` or :class:`OSError`) ``exc`` is, or the
    first of the group it is when the whole group is such errors; else ``None``."""
    if isinstance(exc, BaseExceptionGroup):
        matched, rest = exc.split((ConfigError, OSError))
        if matched is None or rest is not None:
            return None
        first: BaseException = matched
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        return first
    return exc if isinstance(exc, (ConfigError, OSError)) else None


class FolderWatcher:
    """Finds settled files in one drop folder and queues them, until cancelled."""

    def __init__(self, watch: WatchConfig, queue: ObjectSendStream[Candidate],
                 pending: set[tuple[str, str]], rescan_interval: float) -> None:
        self.watch = watch
        self.queue = queue
        #: (watch, name) of files queued or being claimed, shared by all watchers and jobs.
        self.pending = pending
        self.rescan_interval = rescan_interval
        self._seen: dict[str, Seen] = {}
        self._changed = anyio.Event()
        self._armed = anyio.Event()
        self._probe = f".pyramidd-armed-{secrets.token_hex(4)}"

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Arm the watcher, report ready, then look at the folder whenever it may have changed.

        A folder that cannot be made ready or read (its permissions changed, a watch
        added by a reload whose folder cannot be made) is logged and tried again every
        ``rescan_interval``: the service and its other watches go on meanwhile.
        """
        reported = False

        def ready() -> None:
            nonlocal reported
            if not reported:
                reported = True
                task_status.started()

        while True:
            try:
                await self._watch(ready)
                return
            except Exception as raised:
                exc = _folder_error(raised)
                if exc is None:
                    raise
                ready()
                retry_in = max(1.0, self.rescan_interval)
                log.error("cannot watch the drop folder; trying again", watch=self.watch.name,
                          folder=str(self.watch.folder), error=str(exc), retry_in=retry_in)
                await anyio.sleep(retry_in)

    async def _watch(self, ready: Callable[[], None]) -> None:
        await anyio.to_thread.run_sync(claim.prepare, self.watch)
        self._stop = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._events)
            try:
                await self._arm()
                ready()
                log.info("watching", watch=self.watch.name, folder=str(self.watch.folder),
                         output=str(self.watch.output))
                await self._looks()
            finally:
                # The inotify thread cannot be cancelled, only asked to stop: ask before
                # the task group waits for it, or a stop or reload waits a whole timeout.
                self._stop.set()

    async def _arm(self) -> None:
        # watchfiles offers no "armed" callback; an event for a file we create proves it.
        probe = self.watch.folder / self._probe
        try:
            with anyio.fail_after(10):
                while not self._armed.is_set():
                    await anyio.to_thread.run_sync(probe.touch)
                    with anyio.move_on_after(0.1):
                        await self._armed.wait()
        finally:
            await anyio.to_thread.run_sync(lambda: probe.unlink(missing_ok=True))

    async def _events(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                async for changes in awatch(self.watch.folder, watch_filter=None,
                                            recursive=False, debounce=200, step=20,
                                            stop_event=self._stop, rust_timeout=1000):
                    failures = 0
                    if not self._armed.is_set() and any(
                            os.path.basename(path) == self._probe for _, path in changes):
                        self._armed.set()
                    self._changed.set()
            except Exception as exc:
                # watchfiles gives up on a whole batch when one name is not UTF-8 (and on
                # a folder that vanished); a full look at the folder sees what the batch
                # held, then watch again, backing off while it keeps failing.
                while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
                    exc = exc.exceptions[0]
                if failures == 0:
                    log.warning("folder events lost; looking at the whole folder",
                                watch=self.watch.name, error=str(exc))
                self._changed.set()
                await anyio.sleep(min(0.1 * 2**failures, self.rescan_interval))
                failures += 1

    async def _looks(self) -> None:
        next_rescan = time.monotonic()
        while True:
            self._changed = anyio.Event()
            wake = await self.look()
            now = time.monotonic()
            if now >= next_rescan:
                next_rescan = now + self.rescan_interval
            timeout = next_rescan - now if wake is None else min(wake, next_rescan - now)
            with anyio.move_on_after(max(timeout, 0.01)):
                await self._changed.wait()

    async def look(self) -> float | None:
        """List the folder once, queue what settled; seconds until something else may settle."""
        try:
            entries = await anyio.to_thread.run_sync(list_folder, self.watch.folder)
        except OSError as exc:  # folder removed or unmounted: say so, try again at the next rescan
            log.error("cannot list the drop folder", watch=self.watch.name,
                      folder=str(self.watch.folder), error=str(exc))
            return None
        result = plan(entries, self._seen, self.watch, time.monotonic(), time.time())
        self._seen = result.seen
        for entry in result.ready:
            key = (self.watch.name, entry.name)
            if key in self.pending:
                continue
            self.pending.add(key)
            try:
                await self.queue.send(Candidate(self.watch.name, entry))
            except BaseException:
                self.pending.discard(key)
                raise
        return result.wake_in
