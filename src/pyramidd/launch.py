"""Starting the pool's processes: render workers and the fork server.

Kept to the standard library's light modules, so that ``pyramidd build`` can start the
fork server before it imports the event loop and the engine: the server's own
imports (numpy, the worker modules, the plugins) are the longest path to a build's
first subtree, and they run beside the command's.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence

#: ``python -c`` code of a process the pool starts; ``sys.argv[1]`` is its socket.
WORKER_CODE = ("import sys; from pyramidd.worker import main_from_fd; "
               "main_from_fd(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])")
SERVER_CODE = ("import sys; from pyramidd.forkserver import main_from_fd; "
               "main_from_fd(int(sys.argv[1]), sys.argv[2])")

Started = tuple[subprocess.Popen[bytes], socket.socket]
"""A process and the near end of its socket pair."""


def pool_size(workers: int) -> int:
    """Workers of a pool asked for ``workers`` (0 or less: one per CPU)."""
    return workers if workers > 0 else (os.cpu_count() or 1)


def worker_env(environ: Mapping[str, str]) -> dict[str, str]:
    """A worker's environment: the coordinator's, with numpy's BLAS on one thread
    unless the user chose otherwise. Workers do no linear algebra worth a thread pool,
    and OpenBLAS starts one thread per CPU in every process that imports numpy
    (tens of milliseconds of every worker's start)."""
    return {"OPENBLAS_NUM_THREADS": "1", **environ}


def start(code: str, args: Sequence[str]) -> Started:
    """A ``python -P -c code`` process with the far end of a new socket pair as its first
    argument, then ``args``.

    ``-P``: ``-c`` would put the current directory first on the module path, and a
    ``tifffile.py`` or ``selectors.py`` in the folder a build was started from would
    then be imported in place of the real one by the fork server and every worker.
    """
    parent, child = socket.socketpair()
    try:
        process = subprocess.Popen(
            [sys.executable, "-P", "-c", code, str(child.fileno()), *args],
            pass_fds=[child.fileno()], close_fds=True, env=worker_env(os.environ),
        )
    finally:
        child.close()
    return process, parent


def start_fork_server(disabled_plugins: Sequence[str] = ()) -> Started:
    """The fork server (:mod:`pyramidd.forkserver`) of a pool whose workers skip
    ``disabled_plugins``; give it to :class:`~pyramidd.pool.WorkerPool` as
    ``fork_server``."""
    return start(SERVER_CODE, [",".join(disabled_plugins)])


def stop(started: Started) -> None:
    """End a process started here that nothing took over (e.g. a fork server started
    ahead of a build that turned out to need none)."""
    process, sock = started
    sock.close()
    process.kill()
    process.wait()


def build_fork_server_plugins(argv: Sequence[str]) -> tuple[str, ...] | None:
    """The plugins to disable in the fork server of ``pyramidd build`` arguments
    ``argv`` (the command's own, without the program name), read without argparse;
    ``None`` when they are not those of a build.

    Every one-shot build forks its workers from a server started first, one worker
    too: the server's imports then run beside the command's, not after its event
    loop's, and it has the first task's modules loaded when the plan arrives.

    Only a guess, taken before the command line's modules are imported: the command
    checks it against its parsed arguments and stops a server it does not need.
    """
    if not argv or argv[0] != "build":
        return None
    disabled = []
    rest = iter(argv[1:])
    for arg in rest:
        if arg in ("--", "-h", "--help"):
            return None
        name, eq, value = arg.partition("=")
        if name != "--disable-plugin":
            continue
        if not eq:
            value = next(rest, None)
            if value is None:
                return None
        disabled.append(value)
    return tuple(disabled)
