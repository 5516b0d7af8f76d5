"""A plugin that records every file a render worker opens for reading.

Loaded into workers with ``PYRAMIDD_PLUGINS``; each worker installs an audit hook
at start and appends ``pid path`` lines to the file named by ``PYRAMIDD_TEST_OPENS``.
"""

from __future__ import annotations

import os
import sys

from pyramidd.hookspecs import hookimpl


@hookimpl
def pyramidd_worker_started(worker_id: int) -> None:
    log = os.environ["PYRAMIDD_TEST_OPENS"]
    watched = os.environ["PYRAMIDD_TEST_WATCH"]

    def hook(event: str, args: tuple) -> None:
        if event != "open" or not isinstance(args[0], (str, bytes, os.PathLike)):
            return
        path, mode = os.fsdecode(args[0]), args[1]
        flags = args[2] if len(args) > 2 else 0
        reading = (mode is not None and "r" in mode and "+" not in mode) or (
            mode is None and isinstance(flags, int) and flags & 3 == os.O_RDONLY
        )
        if reading and watched in path and path != log:
            with open(log, "a") as f:
                f.write(f"{os.getpid()} {path}\n")

    sys.addaudithook(hook)
