"""Memory of a process tree, measured the way the benchmarks and the summary line report it.

Shared-memory pages are counted once: each process contributes its proportional set
size (PSS, from ``/proc/PID/smaps_rollup``), which splits a shared page among the
processes that map it. Where PSS is not available, RSS is used.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (Linux ``/proc``)."""
    out: list[int] = []
    task_dir = Path(f"/proc/{pid}/task")
    try:
        tasks = list(task_dir.iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            out.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            pass
    return out


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    seen, todo = [], [pid]
    while todo:
        p = todo.pop()
        seen.append(p)
        todo.extend(children(p))
    return seen


def process_bytes(pid: int) -> int:
    """PSS of one process in bytes (RSS if PSS is unreadable; 0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_bytes(pid: int | None = None) -> int:
    """Memory of ``pid`` (default: this process) and all its descendants."""
    return sum(process_bytes(p) for p in descendants(pid or os.getpid()))


class PeakSampler:
    """Samples a process tree's memory in a background thread and keeps the peak.

    A thread rather than an async task: it must keep sampling while the event loop
    is busy, and it only sleeps and reads ``/proc``.
    """

    def __init__(self, pid: int | None = None, interval: float = 0.1) -> None:
        self.pid = pid or os.getpid()
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pyramidd-memory", daemon=True)

    def sample(self) -> None:
        """Take one sample now (besides the thread's, e.g. while workers still run)."""
        self.peak = max(self.peak, tree_bytes(self.pid))

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()
