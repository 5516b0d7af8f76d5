"""What a start does with the jobs a previous run left open (after kill -9, power cut, OOM).

The journal says how far each job got; the folders say where its input is. Together
they decide, for every open job, one of:

- ``redo``: the input is in ``processing/`` and no build of it is known to have
  finished: build it again (the engine replaces a partial or complete old output).
- ``finish-done``: the journal says "built": the output is in place, so only the
  move to ``done/`` is left.
- ``finish-failed``: the journal says "failed": write the error report, move the input.
- ``release``: the claim never happened (the input is still in the drop folder, to
  be taken again when it settles) or the input is gone from every folder.

Files found in ``processing/`` without a journal entry (a lost or deleted journal)
are adopted and redone. Staging directories of builds that died and shared-memory
segments of dead processes are removed. Everything here blocks (it runs once, in a
worker thread, before the service takes files).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from .. import shm
from ..sinks import staging
from .claim import carry_sidecars, located
from .config import ServiceConfig, WatchConfig
from .journal import JobRecord, new_job_id
from .naming import output_name
from .settle import is_sidecar, marker_name


@dataclass(frozen=True)
class Decision:
    """What to do with one open job."""

    action: str  # redo, finish-done, finish-failed, release, keep
    job: JobRecord
    reason: str = ""


def decide(jobs: dict[str, JobRecord], config: ServiceConfig,
           where: dict[tuple[str, str], str | None]) -> list[Decision]:
    """Decide every open job's fate from its record and where its input is (pure).

    ``where[(watch, name)]`` is ``"processing"``, ``"drop"`` or ``None``.
    """
    decisions: list[Decision] = []
    names = {w.name for w in config.watches}
    # A later claim of a name still busy in processing/ was refused; the older job owns it.
    owners: dict[tuple[str, str], str] = {}
    for job in sorted(jobs.values(), key=lambda j: j.id):
        if job.state != "claiming":
            owners.setdefault((job.watch, job.name), job.id)
    for job in sorted(jobs.values(), key=lambda j: j.id):
        key = (job.watch, job.name)
        if job.watch not in names:
            decisions.append(Decision("keep", job, f"watch {job.watch!r} is no longer configured"))
            continue
        loc = where.get(key)
        if job.state == "built":
            decisions.append(Decision("finish-done", job, "output was complete"))
        elif job.state == "failed":
            decisions.append(Decision("finish-failed", job, "job had failed"))
        elif job.state == "claiming" and (loc != "processing" or owners.get(key, job.id) != job.id):
            decisions.append(Decision("release", job, "claim did not happen"))
        elif loc == "processing":
            owners.setdefault(key, job.id)
            decisions.append(Decision("redo", job, "build did not finish"))
        else:
            decisions.append(Decision("release", job, "input is gone"))
    return decisions


def adopt(config: ServiceConfig, jobs: dict[str, JobRecord]) -> list[JobRecord]:
    """Jobs for files in ``processing/`` that no open job accounts for."""
    known = {(j.watch, j.name) for j in jobs.values()}
    adopted = []
    for watch in config.watches:
        try:
            names = sorted(os.listdir(watch.processing))
        except FileNotFoundError:
            continue
        for name in names:
            if (watch.name, name) not in known and not is_sidecar(name, watch):
                adopted.append(JobRecord(id=new_job_id(), watch=watch.name, name=name,
                                         output=output_name(name), state="claimed"))
    return adopted


def scan(jobs: dict[str, JobRecord], config: ServiceConfig) -> list[Decision]:
    """Look at the folders and decide (blocking)."""
    where: dict[tuple[str, str], str | None] = {}
    for job in jobs.values():
        try:
            watch = config.watch(job.watch)
        except KeyError:
            continue
        where[(job.watch, job.name)] = located(watch, job.name)
    decisions = decide(jobs, config, where)
    for job in adopt(config, jobs):
        decisions.append(Decision("redo", job, "found in processing/ without a journal entry"))
    for d in decisions:
        if d.action in ("redo", "finish-done", "finish-failed"):
            tidy_claim(config.watch(d.job.watch), d.job.name)
    return decisions


def tidy_claim(watch: WatchConfig, name: str) -> None:
    """Finish the parts of a claim a crash may have cut off: sidecars and the marker."""
    if not os.path.lexists(watch.processing / name):
        return
    carry_sidecars(watch, name)
    if watch.done_marker and not os.path.lexists(watch.folder / name):
        try:
            os.unlink(watch.folder / marker_name(name))
        except FileNotFoundError:
            pass


def sweep_leftovers(config: ServiceConfig) -> dict[str, list[str]]:
    """Remove staging directories of dead builds and shared memory of dead processes."""
    removed: dict[str, list[str]] = {"staging": [], "shm": []}
    for watch in config.watches:
        removed["staging"] += [str(p) for p in staging.sweep_stale(watch.output)]
        removed["staging"] += [str(p) for p in _sweep_unborn(watch.output)]
    removed["shm"] = shm.sweep()
    return removed


def _sweep_unborn(folder: Path) -> list[Path]:
    """Staging directories a kill cut off before their lock existed, if their process is dead.

    The engine's sweep spares a lockless directory for a grace period (its build may be
    starting in another process); its name says which process made it
    (``.NAME.pyramidd-staging-PID-RANDOM``), so a dead maker settles it at once.
    """
    removed = []
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for entry in entries:
        head, mark, token = entry.name.rpartition(staging.STAGING_MARK)
        if not (mark and head.startswith(".") and entry.is_dir(follow_symlinks=False)):
            continue
        pid = token.split("-", 1)[0]
        if not pid.isdigit() or os.path.lexists(Path(entry.path) / "lock") or shm.alive(int(pid)):
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(Path(entry.path))
    return removed


def as_claimed(job: JobRecord) -> JobRecord:
    """A job to redo, as the journal will record it."""
    return replace(job, state="claimed")
