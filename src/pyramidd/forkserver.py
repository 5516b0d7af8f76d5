"""The fork server: a process that starts render workers by forking itself.

Starting a worker as a new interpreter costs about 0.2 s of CPU (numpy and
pyramidd's worker modules imported again), and a one-shot build pays it for every
worker on the same two cores as the coordinator's own start. The fork server imports
the worker's modules once, with what each worker would import at its start and first
tile (the plugins, the resamplers and OpenCV, the JPEG codec); every worker after
that is a fork of it, running in a few milliseconds and sharing those pages. The
server never runs a task, so no input can crash it.

Its protocol, on the socket the pool gives it (a
:class:`~multiprocessing.connection.Connection`): the pool sends the worker's index
followed by the worker's end of a new socket pair (``SCM_RIGHTS``); the server forks
a worker on it, skipping the plugins it was started without, and answers
``("started", pid)``. When a worker exits, the
server reaps it and sends ``("exited", pid, returncode)`` (negative: killed by that
signal, as :mod:`subprocess` has it). ``None`` or the end of the socket stops the
server; its workers then die with it (their parent-death signal), as they die with the
coordinator when it is killed.
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import traceback
from multiprocessing.connection import Connection
from multiprocessing.reduction import recvfds

# The modules every worker needs, imported once here for all of them.
from . import plugins as plugin_loader
from . import worker
from .fastexit import exit_now


def main_from_fd(fd: int, disabled: str) -> None:
    """Entry point of the fork server process started by :class:`~pyramidd.pool.WorkerPool`;
    ``disabled`` names the plugins its workers do not load (comma-separated)."""
    worker.ignore_stop_signals()  # as the workers: the pool decides
    worker._die_with_parent()
    try:
        preload(tuple(filter(None, disabled.split(","))))
        serve(Connection(fd), disabled)
    finally:
        exit_now(0)


def preload(disabled: tuple[str, ...]) -> None:
    """Import, once for all workers, what every worker imports when it starts (the
    plugins) and at its first tile (about 40-80 ms each otherwise, on the cores their
    first subtrees wait for). A plugin that fails to import is left for each worker to
    load and report, as it would without the server."""
    try:
        plugin_loader.load(disabled)
    except Exception:
        pass
    # Not Pillow: of the built-in formats only some sources and encoders need it, and
    # a worker of such a build imports it at its first tile, beside the other worker.
    import imagecodecs

    from . import resamplers
    # The TIFF source, region reads of the commonest big input: tifffile is 15-20 ms
    # that each worker would otherwise spend at its first task, after the coordinator
    # has planned, when both cores wait for it; here, it is taken while the server
    # waits for the coordinator.
    from .sources import tiff  # noqa: F401

    resamplers.opencv()
    imagecodecs.jpeg8_encode  # imagecodecs imports each codec at its first use


def serve(conn: Connection, disabled: str) -> None:
    """Fork a worker for each request on ``conn``, its plugins but ``disabled``
    (comma-separated), and report the workers' exits, until ``None`` or the end of
    ``conn``."""
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    # A Python handler, so that SIGCHLD writes a byte to the wake-up pipe.
    signal.signal(signal.SIGCHLD, lambda *_: None)
    with selectors.DefaultSelector() as selector:
        selector.register(conn.fileno(), selectors.EVENT_READ, "request")
        selector.register(wake_r, selectors.EVENT_READ, "child")
        while True:
            for key, _ in selector.select():
                try:
                    if key.data == "child":
                        os.read(wake_r, 4096)
                        _report_exits(conn)
                        continue
                    index = conn.recv()
                    if index is None:
                        return
                    with socket.fromfd(conn.fileno(), socket.AF_UNIX, socket.SOCK_STREAM) as s:
                        (fd,) = recvfds(s, 1)
                    pid = os.fork()
                    if pid == 0:
                        selector.close()
                        _become_worker(fd, index, disabled, conn, (wake_r, wake_w))
                    os.close(fd)
                    conn.send(("started", pid))
                except (EOFError, OSError):  # the pool is gone
                    return


def _report_exits(conn: Connection) -> None:
    """Reap every worker that has exited and tell the pool."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        conn.send(("exited", pid, os.waitstatus_to_exitcode(status)))


def _become_worker(
    fd: int, index: int, disabled: str, conn: Connection, wake: tuple[int, int]
) -> None:
    """In a forked child: drop the server's state, run the worker, never return."""
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for w in wake:
            os.close(w)
        conn.close()
        worker.main_from_fd(fd, index, disabled)  # ends the process itself
    except BaseException:  # whatever it was, the server's loop must not go on in this child
        traceback.print_exc()
    finally:
        exit_now(1)  # main_from_fd did not end the process: it failed
