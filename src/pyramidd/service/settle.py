"""When a dropped file is complete enough to take: pure functions over directory listings.

A file is *settled* when its size and modification time have not changed for the
watch's ``settle_time`` and it is older than ``min_age``. Producers that cannot be
trusted to write atomically are caught by the first rule; clocks that disagree (a
network filesystem stamping times from another machine) are the reason for the
second being a separate rule. Hidden files and temporary names are never taken: the
usual way to write atomically is to write ``.NAME.part`` and rename it.

With ``done_marker = true`` a file is taken as soon as ``NAME.done`` exists beside
it: the marker is the producer's word that the file is complete, so no settle time
applies. Markers themselves are never inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import WatchConfig, matches

#: Name endings of files still being written by common tools (curl, rsync, browsers, editors).
TEMPORARY_SUFFIXES = (".part", ".tmp", "~", ".crdownload", ".partial", ".swp", ".filepart")
#: Ending of the marker files that say "NAME is complete".
MARKER_SUFFIX = ".done"


@dataclass(frozen=True)
class Entry:
    """One name in a drop folder, as ``lstat`` saw it (links are not followed)."""

    name: str
    size: int
    mtime: float  # seconds since the epoch
    regular: bool  # a regular file
    symlink: bool


@dataclass(frozen=True)
class Seen:
    """The size and mtime of a file, and since when (monotonic seconds) they were so."""

    size: int
    mtime: float
    since: float


@dataclass
class Plan:
    """What one look at a folder decided."""

    ready: list[Entry]
    seen: dict[str, Seen]
    #: Seconds until a file still settling could become ready; ``None``: nothing waits.
    wake_in: float | None


def is_ignored(name: str) -> bool:
    """Hidden files, temporary names and ``.done`` markers are never inputs."""
    return (
        name.startswith(".")
        or name.endswith(TEMPORARY_SUFFIXES)
        or name.endswith(MARKER_SUFFIX)
    )


def marker_name(name: str) -> str:
    """The marker file that says ``name`` is complete."""
    return name + MARKER_SUFFIX


def plan(entries: list[Entry], seen: dict[str, Seen], watch: WatchConfig, now: float,
         wall: float) -> Plan:
    """Decide which entries are ready to be claimed.

    ``seen`` is the previous plan's memory; ``now`` a monotonic clock and ``wall`` the
    epoch time (for ``min_age``, which compares with file times). Directories are
    skipped (``processing/``, ``done/``, ``failed/`` live in the drop folder); symlinks
    are offered like files so that the job can refuse them with a reason.
    """
    by_name = {e.name: e for e in entries}
    ready: list[Entry] = []
    new_seen: dict[str, Seen] = {}
    wake: float | None = None

    def settled(e: Entry) -> bool:
        nonlocal wake
        prev = seen.get(e.name)
        if prev is None or prev.size != e.size or prev.mtime != e.mtime:
            prev = Seen(e.size, e.mtime, now)
        new_seen[e.name] = prev
        stable_for = now - prev.since
        # An mtime in the future (another machine's clock, a copy that kept a wrong
        # time) says nothing of when the file was written: the time it has been seen
        # unchanged stands in, or it would wait until that date.
        age = wall - e.mtime if e.mtime <= wall else stable_for
        if stable_for >= watch.settle_time and age >= watch.min_age:
            return True
        wait = max(watch.settle_time - stable_for, watch.min_age - age, 0.0)
        wake = wait if wake is None else min(wake, wait)
        return False

    for e in entries:
        if (not (e.regular or e.symlink) or is_ignored(e.name) or is_sidecar(e.name, watch)
                or not matches(e.name, watch)):
            continue
        if watch.done_marker:
            if marker_name(e.name) in by_name:
                ready.append(e)
            continue
        # A sidecar still being written holds its input back too (no short-circuit:
        # every file's clock must be kept).
        companions = [by_name[n] for n in sidecar_names(e.name, watch) if n in by_name]
        if all([settled(e)] + [settled(c) for c in companions]):
            ready.append(e)
    return Plan(ready, new_seen, wake)


def is_sidecar(name: str, watch: WatchConfig) -> bool:
    """Whether ``name`` is a companion of another input (``NAME.points``), never an input."""
    return name.endswith(watch.sidecars)


def sidecar_names(name: str, watch: WatchConfig) -> list[str]:
    """The companions ``name`` may have."""
    return [name + suffix for suffix in watch.sidecars]


def unchanged(before: Entry, after: Entry) -> bool:
    """Whether a file is as it was when it was judged settled (checked just before claiming)."""
    return (before.size, before.mtime, before.regular, before.symlink) == (
        after.size, after.mtime, after.regular, after.symlink)
