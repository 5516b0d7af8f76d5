"""Run a command and measure it the way every pyramidd benchmark reports: wall time,
CPU time of the process tree, and peak memory of the whole tree (PSS, so shared
memory counts once), sampled from outside the measured process."""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from pyramidd.memory import tree_bytes


@dataclass
class Measurement:
    """One run of one command."""

    wall: float
    cpu: float
    peak: int


def measure(cmd: Sequence[str], env: Mapping[str, str] | None = None, interval: float = 0.05) -> Measurement:
    """Run ``cmd`` to completion; raise if it fails."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    proc = subprocess.Popen(list(cmd), env={**os.environ, **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_bytes(proc.pid))
        # Wait on the process rather than sleep: the wall time of a short command is
        # not rounded up to the next sample.
        try:
            proc.wait(interval)
        except subprocess.TimeoutExpired:
            pass
    wall = time.monotonic() - start
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode:
        raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}): {err[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Measurement(wall, cpu, peak)


def code_version() -> str:
    """The commit the measured code is at, and whether ``src/`` differs from it.

    Figures are only comparable between runs of the same code; printed at the top
    of every benchmark's output.
    """
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "src"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "code: not a git checkout"
    return f"code: {head}" + (" with uncommitted changes in src/" if dirty else "")


def median(runs: list[Measurement]) -> Measurement:
    """Median of each figure over repeated runs."""
    return Measurement(
        statistics.median(r.wall for r in runs),
        statistics.median(r.cpu for r in runs),
        int(statistics.median(r.peak for r in runs)),
    )
