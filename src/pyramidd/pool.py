"""A pool of render worker processes driven from async code: the executor seam.

The engine only needs :meth:`WorkerPool.run` (run a picklable function in a worker,
optionally a given one) and :attr:`WorkerPool.size`; a distributed executor can take
the same tasks by offering the same two things.

Each worker is joined to the coordinator by a socket pair. A pool of one worker
starts it as a plain ``python -c`` subprocess (not multiprocessing's spawn, which
re-imports the caller's ``__main__``); a larger pool, or one given a fork server
started ahead, starts one such process, the fork server
(:mod:`pyramidd.forkserver`), and forks every worker from it, so the worker modules
are imported once, not once per worker. The coordinator waits on the
sockets, and on a pidfd of each process it started, with ``anyio.wait_readable``, so
nothing blocks the event loop.
A worker that dies fails the task it was running with :class:`WorkerCrashed` and
is replaced; the pool keeps serving. If the fork server dies, its workers die with it
and are replaced by plain subprocesses.
"""

from __future__ import annotations

import itertools
import os
import pickle
import signal
import socket
import subprocess
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.reduction import sendfds
from typing import Any, Callable, Sequence

import anyio
from anyio.abc import TaskGroup

from . import launch
from .errors import PluginError, WorkerCrashed

EventHandler = Callable[[dict[str, Any]], None]

_INIT = 0  # call id of the initializer; task ids start at 1


@dataclass
class _Call:
    """One task in flight."""

    id: int
    #: The pickled task, kept to hand it to another worker if its own never started.
    payload: bytes = b""
    done: anyio.Event = field(default_factory=anyio.Event)
    on_event: EventHandler | None = None
    result: Any = None
    error: BaseException | None = None
    abandoned: bool = False


class _Forked:
    """A worker started by the fork server: what the pool uses of a ``Popen``.

    Its pid arrives in the server's answer (or the worker's own "ready"), its exit
    code in the server's report.
    """

    def __init__(self) -> None:
        self.pid: int | None = None
        self.returncode: int | None = None
        self.exited = anyio.Event()

    def poll(self) -> int | None:
        return self.returncode

    def kill(self) -> None:
        if self.pid is not None and self.returncode is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def ended(self, code: int | None) -> None:
        if not self.exited.is_set():
            self.returncode = code
            self.exited.set()


@dataclass
class _ForkServer:
    """The pool's side of :mod:`pyramidd.forkserver`."""

    process: subprocess.Popen[bytes]
    pidfd: int
    conn: Connection
    #: Workers asked for and not yet answered, in the order asked.
    pending: deque[_Forked] = field(default_factory=deque)
    #: Started workers that have not exited, by pid.
    running: dict[int, _Forked] = field(default_factory=dict)
    alive: bool = True

    def handle(self, message: tuple[Any, ...]) -> None:
        """Act on one message from the server."""
        if message[0] == "started":
            forked = self.pending.popleft()
            forked.pid = message[1]
            self.running[message[1]] = forked
        elif message[0] == "exited":
            forked = self.running.pop(message[1], None)
            if forked is not None:
                forked.ended(message[2])

    def died(self) -> None:
        """The server is gone, and its workers with it (their parent-death signal)."""
        self.alive = False
        for forked in [*self.pending, *self.running.values()]:
            forked.ended(-signal.SIGKILL)
        self.pending.clear()
        self.running.clear()


@dataclass
class _Worker:
    index: int
    process: subprocess.Popen[bytes] | _Forked
    #: Of a worker the pool started itself; a forked one is watched through the server.
    pidfd: int | None
    conn: Connection
    ready: anyio.Event = field(default_factory=anyio.Event)
    call: _Call | None = None
    pid: int | None = None
    start_error: BaseException | None = None


def _wait(process: subprocess.Popen[bytes], timeout: float) -> None:
    try:
        process.wait(max(0.0, timeout))
    except subprocess.TimeoutExpired:
        pass


async def _receive(conn: Connection, handle: Callable[[Any], None]) -> None:
    """Give every message from ``conn`` to ``handle`` until ``conn`` ends or is closed."""
    while True:
        try:
            await anyio.wait_readable(conn.fileno())
        except (OSError, anyio.ClosedResourceError):
            return
        # Every message already there, per wake-up: a wait costs the event loop more
        # than a message (the fd is registered and unregistered each time).
        more = True
        while more:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                return
            handle(message)
            try:
                more = conn.poll(0)
            except OSError:
                return


def _close(conn: Connection) -> None:
    """Close ``conn``, first waking the task that waits to read it: the number of a
    closed socket is soon another's (a replacement worker's), which that task would
    otherwise still be registered on."""
    anyio.notify_closing(conn.fileno())
    conn.close()


async def _wait_exit(w: _Worker, timeout: float) -> None:
    """Wait up to ``timeout`` seconds for worker ``w`` to exit."""
    if isinstance(w.process, _Forked):
        with anyio.move_on_after(max(0.0, timeout)):
            await w.process.exited.wait()
    else:
        await anyio.to_thread.run_sync(_wait, w.process, timeout)


def _connected(started: launch.Started) -> tuple[subprocess.Popen[bytes], Connection]:
    """A process from :mod:`pyramidd.launch`, its socket as a :class:`Connection`."""
    process, sock = started
    return process, Connection(sock.detach())


class WorkerPool:
    """Render worker processes, started on entry and stopped on exit.

    ``on_log`` receives log events forwarded from workers (default: dropped).
    ``initializer`` is ``(fn, args)`` run in every worker the pool starts, replacements
    of dead workers included, before its first task (e.g. set up its logging).
    With ``wait_started`` (the default) entering waits until every worker has started
    and raises why one could not; without it, entering returns at once and tasks queue
    behind a worker still starting (a worker that cannot start fails them), so a
    one-shot build opens its input while the workers import. ``fork_server`` is one
    started ahead with :func:`pyramidd.launch.start_fork_server` (for the same disabled
    plugins), adopted by the pool instead of starting its own, whatever its size.
    """

    def __init__(
        self,
        workers: int = 0,
        *,
        disabled_plugins: Sequence[str] = (),
        on_log: EventHandler | None = None,
        initializer: tuple[Callable[..., Any], tuple[Any, ...]] | None = None,
        wait_started: bool = True,
        fork_server: launch.Started | None = None,
    ) -> None:
        self.size = launch.pool_size(workers)
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
        self._server: _ForkServer | None = None
        self._early_server = fork_server
        #: Workers replaced after dying, for status and tests.
        self.restarts = 0

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> "WorkerPool":
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        try:
            if self.size > 1 or self._early_server is not None:
                self._server = self._start_server(self._early_server)
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
            await _wait_exit(w, deadline - anyio.current_time())
        for w in self._workers:
            if w.process.poll() is None:
                w.process.kill()
                await _wait_exit(w, 5)
            _close(w.conn)
            if w.pidfd is not None:
                os.close(w.pidfd)
        if self._server is not None:
            await self._stop_server(self._server)
        assert self._tg is not None
        self._tg.cancel_scope.cancel()
        await self._tg.__aexit__(None, None, None)

    def pids(self) -> list[int]:
        """Process ids of the live workers (those whose pid is known yet)."""
        return [w.process.pid for w in self._workers
                if w.process.poll() is None and w.process.pid is not None]

    def _start_server(self, started: launch.Started | None) -> _ForkServer:
        process, conn = _connected(started or launch.start_fork_server(self.disabled_plugins))
        server = _ForkServer(process, os.pidfd_open(process.pid), conn)
        assert self._tg is not None
        self._tg.start_soon(_receive, server.conn, server.handle)
        self._tg.start_soon(self._watch_server, server)
        return server

    def _spawn(self, index: int) -> _Worker:
        started = None
        if self._server is not None and self._server.alive:
            started = self._fork(self._server, index)
        if started is None:
            process, conn = _connected(launch.start(
                launch.WORKER_CODE, [str(index), ",".join(self.disabled_plugins)]))
            w = _Worker(index, process, os.pidfd_open(process.pid), conn)
        else:
            w = _Worker(index, started[0], None, started[1])
        if self._initializer is not None:
            # Queued ahead of any task on the same pipe, so it runs first.
            fn, args = self._initializer
            w.conn.send((_INIT, pickle.dumps((fn, args))))
        assert self._tg is not None
        self._tg.start_soon(_receive, w.conn, lambda message: self._handle(w, *message))
        self._tg.start_soon(self._watch, w)
        return w

    @staticmethod
    def _fork(server: _ForkServer, index: int) -> tuple[_Forked, Connection] | None:
        """Ask the fork server for worker ``index``; ``None`` if it is gone."""
        parent, child = socket.socketpair()
        try:
            server.conn.send(index)
            with socket.fromfd(server.conn.fileno(), socket.AF_UNIX, socket.SOCK_STREAM) as s:
                sendfds(s, [child.fileno()])
        except OSError:
            parent.close()
            return None
        finally:
            child.close()
        forked = _Forked()
        server.pending.append(forked)
        return forked, Connection(parent.detach())

    async def _watch_server(self, server: _ForkServer) -> None:
        await anyio.wait_readable(server.pidfd)
        if self._closing:
            return
        try:  # what it said before it died still counts
            while server.conn.poll(0):
                server.handle(server.conn.recv())
        except (EOFError, OSError):
            pass
        server.died()
        server.process.poll()  # reaped now, not left a zombie until the pool closes

    @staticmethod
    async def _stop_server(server: _ForkServer) -> None:
        try:
            server.conn.send(None)
        except OSError:
            pass
        await anyio.to_thread.run_sync(_wait, server.process, 5)
        if server.process.poll() is None:
            server.process.kill()
            await anyio.to_thread.run_sync(_wait, server.process, 5)
        _close(server.conn)
        anyio.notify_closing(server.pidfd)
        os.close(server.pidfd)

    # ------------------------------------------------------------------ messages

    def _handle(self, w: _Worker, kind: str, call_id: int | None, payload: Any) -> None:
        """Act on one message from worker ``w``."""
        if kind == "ready":
            w.pid = payload
            if w.process.pid is None:  # forked: the server's answer may still be on its way
                w.process.pid = payload
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
        if isinstance(w.process, _Forked):
            await w.process.exited.wait()
            code = w.process.returncode
        else:
            assert w.pidfd is not None
            await anyio.wait_readable(w.pidfd)
            code = w.process.wait()
        if self._closing:
            return
        # A worker the fork server took along when it died is no start failure: it is
        # replaced below like any worker that died.
        orphaned = isinstance(w.process, _Forked) and not (self._server and self._server.alive)
        if not w.ready.is_set() and not orphaned:
            self._start_failed(
                w, PluginError(f"render worker {w.index} exited during start (exit code {code})")
            )
            return
        call, w.call = w.call, None
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        if code == -signal.SIGBUS:
            from .shm import bus_error_note  # numpy: not before a build needs it

            how += bus_error_note()
        self.restarts += 1
        replacement = self._spawn(w.index)
        self._workers[w.index] = replacement
        if not w.ready.is_set():  # an orphan that never started, so it ran nothing:
            w.ready.set()  # whoever waits on it moves on,
            if call is not None:  # and its task goes to the replacement
                replacement.call, call = call, None
                replacement.conn.send((replacement.call.id, replacement.call.payload))
        _close(w.conn)
        if w.pidfd is not None:
            os.close(w.pidfd)
        if call is not None:
            call.error = WorkerCrashed(
                f"render worker {w.index} (pid {w.pid or w.process.pid}) died ({how}) while working"
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
        call = _Call(next(self._ids), payload, on_event=on_event)
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
