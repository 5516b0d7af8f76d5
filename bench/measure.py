"""Run a command and measure it the way every pyramidd benchmark reports: wall time,
CPU time of the process tree, and peak memory of the whole tree (PSS, so shared
memory counts once), sampled from outside the measured process."""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from pyramidd.memory import tree_bytes
from pyramidd.service.testing import pyramidd_command

#: ``pyramidd`` as users run it: the installed script (``python -m pyramidd`` where
#: there is none), whose start the benches time as part of every build.
PYRAMIDD = pyramidd_command()


@dataclass
class Measurement:
    """One run of one command."""

    wall: float
    cpu: float
    peak: int


def measure(cmd: Sequence[str], env: Mapping[str, str] | None = None,
            interval: float | None = 0.05) -> Measurement:
    """Run ``cmd`` to completion; raise if it fails.

    ``interval`` None: do not sample memory (``peak`` is 0). A sample is not free: the
    kernel walks the page tables of every process in the tree for its PSS, 10-13 ms
    of CPU for a two-worker pyramidd build (four processes), so at 50 ms it takes a
    tenth of a two-core machine from whatever uses both cores, and nothing from a
    command that leaves one idle.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    proc = subprocess.Popen(list(cmd), env={**os.environ, **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    if interval is None:
        proc.wait()
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


def fresh_folder(out: Path) -> Path:
    """A new, empty folder under ``out`` for one run's output.

    Outputs are not deleted between runs but when the bench ends: on ext4 without a
    journal, the kernel does not reuse an inode for one to five minutes after its file
    is deleted, and every file created meanwhile first scans past the freed ones. With
    the last run's tiles deleted just before (5,730 of a 16384² DZI), the scan took 0.7 ms of each new
    tile's creation (perf: ``recently_deleted`` under ``ext4_create``), more than
    encoding it, and charged the deletion to whichever tool ran next.
    """
    dest = out / f"run{sum(1 for _ in out.iterdir())}"
    dest.mkdir()
    return dest


def drop_runs_in_memory(out: Path) -> None:
    """On a tmpfs, delete the runs' outputs under ``out``; call it only while no run
    writes there. A tmpfs has no scan of recently freed inodes to wait out (see
    :func:`fresh_folder`), and every output it keeps is memory: the 35 outputs of a
    32768² scaling case filled a 24 GiB ``/dev/shm`` and the machine's memory with it."""
    if on_tmpfs(out):
        for run in out.glob("run*"):
            shutil.rmtree(run, ignore_errors=True)


def on_tmpfs(path: Path) -> bool:
    """Whether ``path`` is on a tmpfs (the filesystem of the longest mount point above it)."""
    path = path.resolve()
    best, fstype = "", ""
    with open("/proc/mounts") as mounts:
        for line in mounts:
            point, kind = line.split()[1:3]
            point = point.replace("\\040", " ")
            if path.is_relative_to(point) and len(point) > len(best):
                best, fstype = point, kind
    return fstype == "tmpfs"


#: Creating an empty file takes 0.03-0.08 ms on the disks here when no recent
#: deletion is in the way (see :func:`fresh_folder`).
QUIET_CREATE_MS = 0.15


def wait_for_quiet_disk(out: Path, files: int = 500, tries: int = 10) -> None:
    """Wait until creating files in ``out`` is quick, checking every 30 s.

    Files deleted shortly before (the previous bench's outputs, say) make every new
    file slow for up to five minutes on ext4 without a journal; a bench started then
    would measure that. The probe's files stay until the bench ends.
    """
    for attempt in range(tries):
        dest = fresh_folder(out)
        began = time.perf_counter()
        for i in range(files):
            os.close(os.open(dest / f"{i}", os.O_WRONLY | os.O_CREAT, 0o644))
        per_file = (time.perf_counter() - began) * 1000 / files
        if per_file <= QUIET_CREATE_MS:
            return
        print(f"creating a file in {out} takes {per_file:.2f} ms (files deleted lately?): "
              f"waiting 30 s ({attempt + 1}/{tries})", flush=True)
        time.sleep(30)
    print("creating files is still slow: the figures below include it", flush=True)


def settle() -> None:
    """Write the last run's files back to disk now, between runs.

    Otherwise the kernel writes them back during the next run, and pyramidd's own
    durability sync at the end of a build (``syncfs``) writes back whatever any tool
    left dirty on that file system: after a case that wrote gigabytes of PNG tiles,
    the next case's runs were slowed by seconds, unevenly.
    """
    os.sync()


def start_outputs(out: Path) -> None:
    """Make ``out`` the empty folder of every run's output, once creating files is quick."""
    if out.exists():  # left by an interrupted run
        shutil.rmtree(out)
    out.mkdir()
    wait_for_quiet_disk(out)


def finish_outputs(out: Path) -> None:
    """Delete every run's output under ``out`` (see :func:`fresh_folder`), made durable
    at once so that ext4 without a journal holds the inodes back for one minute, not five."""
    shutil.rmtree(out)
    os.sync()
