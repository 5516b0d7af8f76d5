"""A pool of render worker processes driven from async code: the executor seam.

The engine only needs :meth:`WorkerPool.run` (run a picklable function in a worker,
optionally a given one) and :attr:`WorkerPool.size`; a distributed executor can take
the same tasks by offering the same two things.

Each worker is a plain ``python -c`` subprocess (not multiprocessing's spawn, which
re-imports the caller's ``__main__``) joined by a socket pair. The coordinator waits
on the socket and on a pidfd of the process with ``anyio.wait_readable``, so nothing
blocks the event loop.
A worker that dies fails the task it was running with :class:`WorkerCrashed` and
is replaced; the pool keeps serving.
"""

from __future__ import annotations

import itertools
import os
import pickle
import socket
import subprocess
import sys
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Callable, Mapping, Sequence

import anyio
from anyio.abc import TaskGroup

from .errors import PluginError, WorkerCrashed

EventHandler = Callable[[dict[str, Any]], None]

_INIT = 0  # call id of the initializer; task ids start at 1


@dataclass
class _Call:
    """One task in flight."""

    id: int
    done: anyio.Event = field(default_factory=anyio.Event)
    on_event: EventHandler | None = None
    result: Any = None
    error: BaseException | None = None
    abandoned: bool = False


@dataclass
class _Worker:
    index: int
    process: subprocess.Popen[bytes]
    pidfd: int
    conn: Connection
    ready: anyio.Event = field(default_factory=anyio.Event)
    call: _Call | None = None
    pid: int | None = None
    start_error: BaseException | None = None


def _worker_env(environ: Mapping[str, str]) -> dict[str, str]:
    """A worker's environment: the coordinator's, with numpy's BLAS on one thread
    unless the user chose otherwise. Workers do no linear algebra worth a thread pool,
    and OpenBLAS starts one thread per CPU in every process that imports numpy
    (tens of milliseconds of every worker's start)."""
    return {"OPENBLAS_NUM_THREADS": "1", **environ}


def _wait(process: subprocess.Popen[bytes], timeout: float) -> None:
    try:
        process.wait(max(0.0, timeout))
    except subprocess.TimeoutExpired:
        pass


class WorkerPool:
    """Render worker processes, started on entry and stopped on exit.

    ``on_log`` receives log events forwarded from workers (default: dropped).
    ``initializer`` is ``(fn, args)`` run in every worker the pool starts, replacements
    of dead workers included, before its first task (e.g. set up its logging).
    With ``wait_started`` (the default) entering waits until every worker has started
    and raises why one could not; without it, entering returns at once and tasks queue
    behind a worker still starting (a worker that cannot start fails them), so a
    one-shot build opens its input while the workers import.
    """

    def __init__(
        self,
        workers: int = 0,
        *,
        disabled_plugins: Sequence[str] = (),
        on_log: EventHandler | None = None,
        initializer: tuple[Callable[..., Any], tuple[Any, ...]] | None = None,
        wait_started: bool = True,
    ) -> None:
        self.size = workers if workers > 0 else (os.cpu_count() or 1)
        #: Plugins this pool's workers do not load (the coordinator must skip them too).
        self.disabled_plugins = tuple(disabled_plugins)
        self._on_log = on_log
        self._initializer = initializer
        self._wait_started = wait_started
        self._workers: list[_Worker] = []
        self._free: set[int] = set()
        self._waiters: deque[tuple[int | None, anyio.Event, list[int]]] = deque()
        self._ids = itertools.count(1)
        self._tg: TaskGroup | None = None
        self._closing = False
        #: Workers replaced after dying, for status and tests.
        self.restarts = 0

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> "WorkerPool":
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        try:
            self._workers = [self._spawn(i) for i in range(self.size)]
            if self._wait_started:
                for w in self._workers:
                    await w.ready.wait()
                    if w.start_error is not None:
                        raise w.start_error
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        self._free = set(range(self.size))
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self._closing = True
        for w in self._workers:
            try:
                w.conn.send(None)
            except OSError:
                pass
        deadline = anyio.current_time() + 5
        for w in self._workers:
            await anyio.to_thread.run_sync(_wait, w.process, deadline - anyio.current_time())
        for w in self._workers:
            if w.process.poll() is None:
                w.process.kill()
                await anyio.to_thread.run_sync(_wait, w.process, 5)
            w.conn.close()
            os.close(w.pidfd)
        assert self._tg is not None
        self._tg.cancel_scope.cancel()
        await self._tg.__aexit__(None, None, None)

    def pids(self) -> list[int]:
        """Process ids of the live workers."""
        return [w.process.pid for w in self._workers if w.process.poll() is None]

    def _spawn(self, index: int) -> _Worker:
        parent, child = socket.socketpair()
        code = (
            "import sys; from pyramidd.worker import main_from_fd; "
            "main_from_fd(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])"
        )
        args = [str(child.fileno()), str(index), ",".join(self.disabled_plugins)]
        process = subprocess.Popen(
            [sys.executable, "-c", code, *args], pass_fds=[child.fileno()], close_fds=True,
            env=_worker_env(os.environ),
        )
        child.close()
        w = _Worker(index, process, os.pidfd_open(process.pid), Connection(parent.detach()))
        if self._initializer is not None:
            # Queued ahead of any task on the same pipe, so it runs first.
            fn, args = self._initializer
            w.conn.send((_INIT, pickle.dumps((fn, args))))
        assert self._tg is not None
        self._tg.start_soon(self._read, w)
        self._tg.start_soon(self._watch, w)
        return w

    # ------------------------------------------------------------------ messages

    async def _read(self, w: _Worker) -> None:
        while True:
            try:
                await anyio.wait_readable(w.conn.fileno())
            except (OSError, anyio.ClosedResourceError):
                return
            # Every message already there, per wake-up: a wait costs the event loop more
            # than a message (the fd is registered and unregistered each time).
            more = True
            while more:
                try:
                    message = w.conn.recv()
                except (EOFError, OSError):
                    return
                self._handle(w, *message)
                try:
                    more = w.conn.poll(0)
                except OSError:
                    return

    def _handle(self, w: _Worker, kind: str, call_id: int | None, payload: Any) -> None:
        """Act on one message from worker ``w``."""
        if kind == "ready":
            w.pid = payload
            w.ready.set()
        elif kind == "log":
            if self._on_log is not None:
                self._on_log(payload)
        elif kind == "event":
            call = w.call
            if call is not None and call.id == call_id and call.on_event is not None:
                call.on_event(payload)
        elif call_id is None:  # the worker could not start
            self._start_failed(
                w, payload if isinstance(payload, PluginError) else PluginError(str(payload))
            )
        elif call_id == _INIT:
            if kind == "error" and self._on_log is not None:
                self._on_log({"event": "worker initializer failed", "level": "error",
                              "worker": w.index, "error": str(payload)})
        else:
            call = w.call
            if call is None or call.id != call_id:
                return
            w.call = None
            if kind == "ok":
                call.result = payload
            else:
                call.error = payload
            call.done.set()
            if call.abandoned:
                self._release(w.index)

    async def _watch(self, w: _Worker) -> None:
        await anyio.wait_readable(w.pidfd)
        code = w.process.wait()
        if self._closing:
            return
        if not w.ready.is_set():
            self._start_failed(
                w, PluginError(f"render worker {w.index} exited during start (exit code {code})")
            )
            return
        call, w.call = w.call, None
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        self.restarts += 1
        replacement = self._spawn(w.index)
        self._workers[w.index] = replacement
        w.conn.close()
        os.close(w.pidfd)
        if call is not None:
            call.error = WorkerCrashed(
                f"render worker {w.index} (pid {w.pid}) died ({how}) while working; "
                "the task can be retried"
            )
            call.done.set()
        await replacement.ready.wait()
        # An idle worker is still in the free set; a call someone awaits is released by
        # run(); only a call nobody awaits any more leaves the worker to be freed here.
        if replacement.start_error is None and call is not None and call.abandoned:
            self._release(w.index)

    def _start_failed(self, w: _Worker, error: BaseException) -> None:
        """Worker ``w`` will never start: say why to whoever waits for it or already
        queued a task on it."""
        w.start_error = error
        w.ready.set()
        call, w.call = w.call, None
        if call is not None:
            call.error = error
            call.done.set()

    # ------------------------------------------------------------------ scheduling

    async def _acquire(self, wanted: int | None) -> int:
        if wanted is None and self._free:
            return self._free.pop()
        if wanted is not None and wanted in self._free:
            self._free.discard(wanted)
            return wanted
        event, box = anyio.Event(), []
        waiter = (wanted, event, box)
        self._waiters.append(waiter)
        try:
            await event.wait()
        except BaseException:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            elif box:  # handed a worker just as we were cancelled: pass it on
                self._release(box[0])
            raise
        return box[0]

    def _release(self, index: int) -> None:
        """Give worker ``index`` to the oldest waiter that takes it, else mark it free."""
        for waiter in self._waiters:
            wanted, event, box = waiter
            if wanted is None or wanted == index:
                self._waiters.remove(waiter)
                box.append(index)
                event.set()
                return
        self._free.add(index)

    async def run(
        self,
        fn: Callable[..., Any],
        *args: Any,
        worker: int | None = None,
        on_event: EventHandler | None = None,
    ) -> Any:
        """Run ``fn(*args)`` in a worker (``worker``: that one) and return its result.

        ``fn`` must be a module-level function; arguments and result are pickled.
        Raises what ``fn`` raised (user errors as they are, other errors as
        ``RuntimeError`` with the worker's traceback), or :class:`WorkerCrashed`.
        """
        if worker is not None and not 0 <= worker < self.size:
            raise ValueError(f"no worker {worker} in a pool of {self.size}")
        # Pickled before a worker is taken, so a task that cannot be pickled holds none;
        # the task travels pickled inside the message, so a worker that cannot load it
        # (a function it cannot import) still knows which call to fail.
        payload = pickle.dumps((fn, args))
        index = await self._acquire(worker)
        w = self._workers[index]
        if w.start_error is not None:
            self._release(index)
            raise w.start_error
        call = _Call(next(self._ids), on_event=on_event)
        w.call = call
        try:
            try:
                w.conn.send((call.id, payload))
            except OSError:
                pass  # the worker is gone: its watcher fails the call, as for any death
            await call.done.wait()
        except BaseException:
            if not call.done.is_set():
                # The worker is still busy with it: it returns to the pool when it answers.
                call.abandoned = True
                raise
            self._release(index)
            raise
        self._release(index)
        if call.error is not None:
            raise call.error
        return call.result
