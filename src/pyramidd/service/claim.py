"""Moves of an input between its drop folder, ``processing/``, ``done/`` and ``failed/``.

Each move is one ``rename`` within the drop folder's filesystem, so an input is in
exactly one place at every instant, and each is followed by an fsync of the folders
so that a power cut cannot undo it behind the journal's back. Nothing here replaces
an existing file: a name already taken in ``done/`` or ``failed/`` gets a numbered
variant, and a claim whose name is busy in ``processing/`` waits.

All functions block (rename, fsync): call them through ``anyio.to_thread``.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import stat
from pathlib import Path
from typing import Any

import structlog

from .config import ConfigError, WatchConfig
from .settle import marker_name

log = structlog.get_logger("pyramidd.service")


def fsync_dir(path: Path) -> None:
    """Make a folder's entries durable (renames into or out of it)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def prepare(watch: WatchConfig) -> None:
    """Create the watch's drop, ``processing/``, ``done/``, ``failed/`` and output folders.

    A file or symbolic link in the place of one of the service's own folders is moved
    aside (see :func:`own_folder`). :class:`ConfigError` naming the watch if a folder
    cannot be made (permissions, say).
    """
    for folder in (watch.folder, watch.processing, watch.done, watch.failed, watch.output):
        try:
            if folder in (watch.folder, watch.output):  # the admin's: links are fine
                folder.mkdir(parents=True, exist_ok=True)
            else:
                own_folder(watch, folder)
        except OSError as exc:
            raise ConfigError(f"watch {watch.name!r}: cannot create {folder}: "
                              f"{exc.strerror or exc}") from None


def own_folder(watch: WatchConfig, folder: Path) -> None:
    """Make ``folder`` (the watch's ``processing/``, ``done/`` or ``failed/``) a real
    folder, not a file or a symbolic link, before the service moves files into it or
    out of it.

    Anyone who can write to a drop folder can put something in the place of these: a
    file there stopped the service at its next claim, and a link to a folder elsewhere
    made the service move inputs there, or build and publish what it found there. The
    thing in the way is renamed to a free name in the drop folder, where it is taken
    for an input and refused as one (with its reason in ``failed/``).
    """
    try:
        st = os.lstat(folder)
    except FileNotFoundError:
        folder.mkdir(parents=True, exist_ok=True)
        return
    if stat.S_ISDIR(st.st_mode):
        return
    aside = unique_name(watch.folder, folder.name)
    os.rename(folder, watch.folder / aside)
    folder.mkdir(exist_ok=True)
    fsync_dir(watch.folder)
    log.warning("moved aside what was in the place of the service's folder", watch=watch.name,
                folder=str(folder), moved_to=aside,
                kind="symbolic link" if stat.S_ISLNK(st.st_mode) else "file")


def claim(watch: WatchConfig, name: str) -> Path:
    """Move ``name`` from the drop folder into ``processing/``; return its new path.

    :class:`FileNotFoundError` if it is gone; :class:`FileExistsError` if an input of
    the same name is still being processed (it is claimed after that one is done).
    """
    src = watch.folder / name
    dst = watch.processing / name
    if not os.path.isdir(watch.folder):  # someone removed the whole drop folder
        prepare(watch)
    if name in (watch.processing.name, watch.done.name, watch.failed.name):
        # A file or link in the place of one of the service's folders, queued as an
        # input: moved aside, it is taken under its new name.
        own_folder(watch, src)
        raise FileNotFoundError(src)
    own_folder(watch, watch.processing)
    if os.path.lexists(dst):
        raise FileExistsError(dst)
    os.rename(src, dst)
    carry_sidecars(watch, name)
    fsync_dir(watch.processing)
    fsync_dir(watch.folder)
    if watch.done_marker:
        try:
            os.unlink(watch.folder / marker_name(name))
        except FileNotFoundError:
            pass
    return dst


def carry_sidecars(watch: WatchConfig, name: str) -> None:
    """Move ``NAME.points`` and the like from the drop folder to ``processing/`` beside NAME.

    Idempotent, so recovery calls it again for a claim a crash cut short.
    """
    for suffix in watch.sidecars:
        src = watch.folder / (name + suffix)
        dst = watch.processing / (name + suffix)
        if os.path.lexists(src) and not os.path.lexists(dst):
            os.rename(src, dst)


def _move_with_sidecars(watch: WatchConfig, name: str, folder: Path, final: str) -> Path:
    for suffix in watch.sidecars:
        side = watch.processing / (name + suffix)
        if os.path.lexists(side):
            os.rename(side, folder / (final + suffix))
    dst = folder / final
    os.rename(watch.processing / name, dst)
    return dst


#: Longest file name, in bytes, of the filesystems a drop folder lives on.
NAME_MAX = 255


def unique_name(folder: Path, name: str, also: tuple[str, ...] = ()) -> str:
    """``name``, or ``name`` with ``-1``, ``-2``... before its extension, free in ``folder``.

    ``also`` lists suffixes whose companions (``name + suffix``) must be free too; a
    companion name too long to exist is free. A numbered name is cut (its stem) to
    stay within :data:`NAME_MAX` bytes.
    """
    stem, dot, ext = name.rpartition(".")
    if not stem:
        stem, dot, ext = name, "", ""
    candidate, n = name, 0
    while os.path.lexists(folder / candidate) or any(
        os.path.lexists(folder / (candidate + s)) for s in also
    ):
        n += 1
        tail = f"-{n}{dot}{ext}"
        room = NAME_MAX - len(os.fsencode(tail))
        candidate = os.fsdecode(os.fsencode(stem)[:room]) + tail
    return candidate


def report_name(name: str) -> str:
    """The name of the error report of the input called ``name`` in ``failed/``:
    ``NAME.error.json``, or for a name too long for that, its first bytes, a hash of
    it and ``.error.json`` (the report itself names the input in full)."""
    full = name + ".error.json"
    if len(os.fsencode(full)) <= NAME_MAX:
        return full
    digest = hashlib.sha256(os.fsencode(name)).hexdigest()[:12]
    return os.fsdecode(os.fsencode(name)[:200]) + f"-{digest}.error.json"


def finish_done(watch: WatchConfig, name: str) -> Path | None:
    """Move a built input from ``processing/`` to ``done/`` (or delete it, if configured).

    Returns where it went (``None``: deleted). An input already gone is fine: this
    is also how recovery completes a move a crash interrupted.
    """
    own_folder(watch, watch.processing)
    src = watch.processing / name
    if not os.path.lexists(src):
        return None
    if watch.on_success == "delete":
        for suffix in watch.sidecars:
            try:
                os.unlink(watch.processing / (name + suffix))
            except FileNotFoundError:
                pass
        os.unlink(src)
        fsync_dir(watch.processing)
        return None
    own_folder(watch, watch.done)
    final = unique_name(watch.done, name, also=watch.sidecars)
    # The input moves last: while it is in processing/, recovery knows the job is open.
    dst = _move_with_sidecars(watch, name, watch.done, final)
    fsync_dir(watch.done)
    fsync_dir(watch.processing)
    return dst


def finish_failed(watch: WatchConfig, name: str, report: dict[str, Any]) -> Path | None:
    """Write ``failed/NAME.error.json`` (atomically), then move the input beside it."""
    own_folder(watch, watch.processing)
    src = watch.processing / name
    if not os.path.lexists(src):
        return None
    own_folder(watch, watch.failed)
    final = unique_name(watch.failed, name, also=(".error.json", *watch.sidecars))
    error_path = watch.failed / report_name(final)
    tmp = watch.failed / f".pyramidd-report-{secrets.token_hex(6)}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2, ensure_ascii=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, error_path)
    dst = _move_with_sidecars(watch, name, watch.failed, final)
    fsync_dir(watch.failed)
    fsync_dir(watch.processing)
    return dst


def located(watch: WatchConfig, name: str) -> str | None:
    """Where the input called ``name`` is now: ``drop``, ``processing`` or ``None``."""
    if os.path.lexists(watch.processing / name):
        return "processing"
    if os.path.lexists(watch.folder / name):
        return "drop"
    return None
