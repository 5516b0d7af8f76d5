"""Atomic output: a pyramid appears whole at its name, or not at all.

Every sink (built-in or a plugin's) builds its files in a *staging directory* next to
the output, on the same filesystem so that moving the result into place is a rename::

    OUTPUT_FOLDER/
      .NAME.pyramidd-staging-<pid>-<random>/   NAME: the descriptor (``out.dzi``, ``tiles``)
        lock        held (flock) by the building process for the whole build
        new/        the output entries, under their final names (``out_files``, ``out.dzi``)
        old/        a replaced output, parked here until it is deleted

:class:`Staging` is that life cycle as plain data (it is pickled to render workers
with the sink): :meth:`Staging.start` makes the directory, workers write tiles under
:attr:`Staging.new` with :func:`write_file`, the sink writes its descriptor last, and
:meth:`Staging.commit` makes everything durable (one ``syncfs(2)``), then renames
the entries into place, the descriptor last. :meth:`Staging.abort` deletes it all.

An output is a few *entries* of one folder (DZI: ``NAME_files`` then ``NAME.dzi``;
TMS/XYZ: the folder ``NAME``). The **last entry is the descriptor**: while it is
absent, the output does not exist for a reader. Replacing an existing output
therefore first moves the old descriptor aside, then swaps each data entry with
``renameat2(RENAME_EXCHANGE)`` (or rename-aside-then-rename where the filesystem
lacks it), then puts the new descriptor in. A reader sees the old output, then no
output, then the new one, never half of each. A failure half-way is rolled back.

:func:`sweep_stale` removes staging directories whose building process died (its
lock is free); the service runs it on its output folders at start-up.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .. import libc
from ..errors import NoSpace, OutputError
from ..shm import alive

#: Part of every staging directory's name; output names may not contain it.
STAGING_MARK = ".pyramidd-staging-"

#: Longest file name, in bytes, on the filesystems pyramidd writes to.
NAME_MAX = 255

_LOCK = "lock"
_NEW = "new"
_OLD = "old"

# renameat2(2) flags (linux/fs.h).
_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2


_syncfs = libc.function("syncfs")
_renameat2 = libc.function("renameat2")
if _renameat2 is not None:
    _renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]


# --------------------------------------------------------------------------- names


def check_name(name: str) -> str:
    """Return ``name`` if it is a plain entry name of a folder, else raise :class:`OutputError`.

    Output entries are made by renaming into the output's folder: a name with a
    separator, ``.``/``..``, a NUL or the staging mark would write elsewhere or be
    mistaken for a staging directory.
    """
    if (
        not name
        or name in (".", "..")
        or "/" in name
        or "\0" in name
        or (os.altsep is not None and os.altsep in name)
    ):
        raise OutputError(
            f"output name {name!r} is not a plain name: give a file or folder name"
            " inside the output folder"
        )
    if STAGING_MARK in name:
        raise OutputError(f"output name {name!r} contains {STAGING_MARK!r}, which pyramidd reserves")
    if len(os.fsencode(name)) > NAME_MAX:
        raise OutputError(f"output name {name[:40]!r}... is longer than {NAME_MAX} bytes")
    return name


def staging_dir_name(label: str, token: str) -> str:
    """``.LABEL.pyramidd-staging-TOKEN``, with ``LABEL`` shortened to fit ``NAME_MAX``.

    The label only tells a person what the directory is; the token makes it unique.
    """
    budget = NAME_MAX - len(os.fsencode("." + STAGING_MARK + token))
    raw = os.fsencode(label)[:budget]
    short = raw.decode("utf-8", "ignore") if len(raw) < len(os.fsencode(label)) else label
    return f".{short}{STAGING_MARK}{token}"


def new_token() -> str:
    """A token unique to this build: process id (for people) and random bits (for uniqueness)."""
    return f"{os.getpid()}-{secrets.token_hex(4)}"


# --------------------------------------------------------------------------- files


def output_error(exc: OSError, doing: str, path: os.PathLike[str] | str) -> OutputError:
    """An :class:`OutputError` for ``exc`` raised while ``doing`` (e.g. "writing") ``path``."""
    code = exc.errno
    if code in (errno.ENOSPC, errno.EDQUOT):
        return NoSpace(f"disk full while {doing} {path}: free some space or choose another"
                       " output folder")
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        msg = f"permission denied while {doing} {path}: choose an output folder you can write to"
    elif code == errno.ENOENT:
        msg = f"cannot finish {doing} {path}: its folder is gone (was the build aborted?)"
    else:
        msg = f"error while {doing} {path}: {exc.strerror or exc}"
    return OutputError(msg)


def write_file(path: os.PathLike[str] | str, data: bytes, *, sync: bool = False) -> int:
    """Write ``data`` to a new file at ``path``; return the bytes written.

    Runs in render workers for every tile, so it is one ``open``/``write``/``close``
    with no buffering layer. ``sync`` also fsyncs the file (for descriptors).
    An ``OSError`` becomes :class:`OutputError` (``disk full while writing ...``).
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)  # close can report a delayed ENOSPC (NFS): inside the try
    except OSError as exc:
        raise output_error(exc, "writing", path) from None
    return len(data)


def fsync_dir(path: os.PathLike[str] | str) -> None:
    """Make the entries of a directory (creations, renames) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _syncfs_at(root: os.PathLike[str] | str) -> bool:
    """One ``syncfs(2)`` of the filesystem holding folder ``root``; ``False`` where the
    call is missing or fails."""
    if _syncfs is None:
        return False
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return _syncfs(fd) == 0
    finally:
        os.close(fd)


def write_back(root: os.PathLike[str] | str) -> None:
    """Write what is dirty on the filesystem holding ``root`` to disk now (nothing
    where ``syncfs`` is missing, or ``root`` is gone): a head start for
    :func:`sync_tree`, which then finds little left to write."""
    with contextlib.suppress(OSError):
        _syncfs_at(root)


def sync_tree(root: os.PathLike[str] | str) -> None:
    """Make every file and directory under ``root`` durable.

    One ``syncfs(2)`` of the filesystem holding ``root`` costs one call however many
    thousands of tiles there are; where it is missing or fails, fall back to fsync of
    every file and directory.
    """
    if _syncfs_at(root):
        return
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(dirpath)


def _rename2(src: Path, dst: Path, flags: int) -> bool:
    """``renameat2(src, dst, flags)``; ``False`` if the system or filesystem lacks it."""
    if _renameat2 is None:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(src), None, str(dst))


def rename_noreplace(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``; ``FileExistsError`` if ``dst`` exists, atomically where possible."""
    if _rename2(src, dst, _RENAME_NOREPLACE):
        return
    if os.path.lexists(dst):  # fallback: a small window remains between check and rename
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dst))
    os.rename(src, dst)


def exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one step; ``False`` if the filesystem cannot."""
    return _rename2(a, b, _RENAME_EXCHANGE)


# --------------------------------------------------------------------------- staging


@dataclass
class Staging:
    """The staging directory of one output, and the rules to move it into place.

    ``entries`` are the names the output puts in ``parent``, in the order they are
    moved into place; the last one is the descriptor. Plain data, pickled to workers;
    the lock is held only by the process that called :meth:`start`.
    """

    parent: Path
    entries: tuple[str, ...]
    replace: bool = False
    token: str = field(default_factory=new_token)
    _lock_fd: int | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.parent = Path(self.parent)
        if not self.entries:
            raise ValueError("an output has at least one entry")
        for name in self.entries:
            check_name(name)

    def __getstate__(self) -> dict[str, Any]:
        # The lock belongs to the process that started the build, not to workers.
        state = dict(self.__dict__)
        state["_lock_fd"] = None
        return state

    def add_entries(self, names: Iterable[str]) -> None:
        """Add entries written after :meth:`start` (a viewer page, say).

        They are moved into place with the others, before the descriptor, so a reader
        never sees them without the pyramid.
        """
        extra = [check_name(n) for n in names if n not in self.entries]
        self.entries = (*self.entries[:-1], *extra, self.entries[-1])

    # ---- where things are

    @property
    def path(self) -> Path:
        """The staging directory, named after the descriptor (what a person knows the output by)."""
        return self.parent / staging_dir_name(self.entries[-1], self.token)

    @property
    def new(self) -> Path:
        """Where the output entries are built, under their final names."""
        return self.path / _NEW

    def staged(self, entry: str) -> Path:
        """Path of ``entry`` inside the staging directory."""
        return self.new / entry

    def target(self, entry: str) -> Path:
        """Final path of ``entry``."""
        return self.parent / entry

    # ---- life cycle

    def check(self) -> None:
        """Raise :class:`OutputError` if the output cannot be written; writes nothing.

        The output exists and ``replace`` is off, or the nearest existing folder on the
        way to ``parent`` is not a folder this process can write to.
        """
        if not self.replace:
            for name in self.entries:
                if os.path.lexists(self.target(name)):
                    raise OutputError(
                        f"{self.target(name)} already exists: remove it, choose another"
                        " output, or ask to replace it (--replace)"
                    )
        folder = self.parent
        while not os.path.lexists(folder) and folder != folder.parent:
            folder = folder.parent
        if not folder.is_dir():
            raise OutputError(f"{folder} is not a folder: cannot write {self.target(self.entries[-1])}")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise OutputError(
                f"permission denied: cannot write into {folder}; choose an output folder"
                " you can write to"
            )

    def start(self) -> Path:
        """Make the staging directory and take its lock; return :attr:`new`. Coordinator.

        Staging directories of dead builds in the same folder are swept first, so a
        killed one-shot build leaves nothing behind for long.
        """
        try:
            self.parent.mkdir(parents=True, exist_ok=True)
            sweep_stale(self.parent)
            os.mkdir(self.path, 0o700)
            fd = os.open(self.path / _LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._lock_fd = fd
            os.mkdir(self.new, 0o777)  # the umask decides the final permissions
        except OSError as exc:
            self._release()
            shutil.rmtree(self.path, ignore_errors=True)
            raise output_error(exc, "creating", self.path) from None
        return self.new

    def commit(self) -> None:
        """Make the staged output durable and move it into place, descriptor last.

        Every entry must be staged (the sink has written its descriptor). With
        ``replace`` an existing output is swapped out (see the module docstring) and
        deleted afterwards; without it, an output that appeared meanwhile is an
        :class:`OutputError`. On success the staging directory is gone.
        """
        missing = [e for e in self.entries if not os.path.lexists(self.staged(e))]
        if missing:
            raise OutputError(f"{self.path} lacks {', '.join(missing)}: the build did not finish")
        try:
            # Tiles and descriptor reach the disk before any rename makes them visible.
            sync_tree(self.path)
            (self.path / _OLD).mkdir(exist_ok=True)
        except OSError as exc:
            raise output_error(exc, "saving", self.path) from None

        undo: list[tuple[str, Path, Path]] = []
        try:
            descriptor = self.entries[-1]
            if len(self.entries) > 1 and os.path.lexists(self.target(descriptor)):
                # Stop announcing the old output before any of its data changes.
                self._require_replace(descriptor)
                os.rename(self.target(descriptor), self.path / _OLD / descriptor)
                undo.append(("rename", self.target(descriptor), self.path / _OLD / descriptor))
            for name in self.entries:
                undo.append(self._install(name))
            fsync_dir(self.parent)
        except (OSError, OutputError) as exc:
            self._roll_back(undo)
            if isinstance(exc, OutputError):
                raise
            raise output_error(exc, "moving into place", self.target(self.entries[-1])) from None
        self._release()
        shutil.rmtree(self.path, ignore_errors=True)  # the replaced output; a sweep gets leftovers

    def write_back(self) -> None:
        """Start the commit's work early: write the tiles staged so far to disk
        (:func:`write_back`), from a thread, while the build goes on."""
        write_back(self.path)

    def abort(self) -> None:
        """Delete the staging directory and everything in it. Safe to call twice."""
        shutil.rmtree(self.path, ignore_errors=True)
        self._release()

    # ---- helpers

    def _require_replace(self, name: str) -> None:
        if not self.replace:
            raise OutputError(
                f"{self.target(name)} appeared while the build ran: remove it or ask to"
                " replace it (--replace)"
            )

    def _install(self, name: str) -> tuple[str, Path, Path]:
        """Move one staged entry into place; return how to undo it."""
        src, dst = self.staged(name), self.target(name)
        if os.path.lexists(dst):
            self._require_replace(name)
            if exchange(src, dst):
                return ("exchange", src, dst)  # the old entry now sits at src
            aside = self.path / _OLD / name
            os.rename(dst, aside)
            try:
                os.rename(src, dst)
            except OSError:
                os.rename(aside, dst)
                raise
            return ("aside", dst, aside)
        try:
            rename_noreplace(src, dst)
        except FileExistsError:
            self._require_replace(name)
            raise
        return ("rename", src, dst)

    def _roll_back(self, undo: Iterable[tuple[str, Path, Path]]) -> None:
        """Undo the renames done so far, newest first, so the old output is whole again."""
        for action, a, b in reversed(list(undo)):
            try:
                if action == "exchange":
                    exchange(a, b)
                elif action == "rename":  # staged a was moved to b (or b moved aside to a)
                    os.rename(b, a)
                else:  # "aside": new entry at a, old one at b
                    os.rename(a, self.staged(a.name))
                    os.rename(b, a)
            except OSError:
                pass  # best effort: what is left stays in the staging directory

    def _release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def _token_pid(name: str) -> int | None:
    """The pid a staging directory's token names (see :func:`new_token`)."""
    try:
        return int(name.rsplit(STAGING_MARK, 1)[1].split("-", 1)[0])
    except (IndexError, ValueError):
        return None


def _is_live(path: Path, grace: float) -> bool:
    # A young directory of a live process may be between its mkdir and its flock:
    # probing the lock then could win it, and the build would fail or lose its folder.
    pid = _token_pid(path.name)
    try:
        young = time.time() - path.stat().st_mtime < grace
    except FileNotFoundError:
        return True
    if young and pid is not None and alive(pid):
        return True
    try:
        fd = os.open(path / _LOCK, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        # A build takes its lock right after mkdir; give one being born the benefit of doubt.
        try:
            return time.time() - path.stat().st_mtime < grace
        except FileNotFoundError:
            return True
    except OSError:
        return True  # not ours to judge (another user's build): leave it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def sweep_stale(folder: os.PathLike[str] | str, *, grace: float = 60.0) -> list[Path]:
    """Delete staging directories in ``folder`` whose building process is gone.

    A directory is stale when no process holds its lock (the lock dies with its
    process, whatever killed it), or when it has no lock and is older than ``grace``
    seconds. Live builds, in this process or another, are left alone. Returns the
    directories removed. Runs in the coordinator (service start-up).
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for entry in entries:
        if not entry.name.startswith(".") or STAGING_MARK not in entry.name:
            continue
        if not entry.is_dir(follow_symlinks=False):
            continue
        path = Path(entry.path)
        if _is_live(path, grace):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed
