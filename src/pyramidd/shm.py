"""Shared-memory buffers: the only way pixels cross process boundaries.

Every segment pyramidd creates is named ``pyramidd_<pid>_<token>`` after the process
that owns it, so :func:`sweep` can remove the segments of processes that died
(kill -9 leaves them in ``/dev/shm``). Tiles travel in fixed-size *slots* of a few
large segments (:class:`SlotPool`), never one segment per tile.
"""

from __future__ import annotations

import mmap
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import _posixshmem  # shm_open/shm_unlink, as multiprocessing.shared_memory uses them
import numpy as np

from .errors import ImageTooLarge

PREFIX = "pyramidd_"
SHM_DIR = Path("/dev/shm")


def segment_name(owner_pid: int | None = None) -> str:
    """A fresh segment name owned by ``owner_pid`` (default: this process)."""
    return f"{PREFIX}{owner_pid or os.getpid()}_{secrets.token_hex(6)}"


class Segment:
    """A named POSIX shared-memory segment mapped into this process.

    What ``multiprocessing.shared_memory.SharedMemory`` does, without its resource
    tracker: that starts a tracker process (7 MiB) beside every process that touches a
    segment, only to be told to forget it again, since pyramidd tracks its segments by
    name (:func:`sweep`) and unlinks them itself.
    """

    def __init__(self, name: str, *, create: bool = False, size: int = 0) -> None:
        flags = os.O_RDWR | (os.O_CREAT | os.O_EXCL if create else 0)
        fd = _posixshmem.shm_open("/" + name, flags, mode=0o600)
        try:
            if create:
                os.ftruncate(fd, size)
            #: Bytes mapped.
            self.size = os.fstat(fd).st_size
            self._mmap: mmap.mmap | None = mmap.mmap(fd, self.size)
        except BaseException:
            if create:
                unlink(name)
            raise
        finally:
            os.close(fd)
        self.name = name
        #: The mapping, for numpy views.
        self.buf: memoryview = memoryview(self._mmap)

    def close(self) -> None:
        """Unmap; raises ``BufferError`` while a view of :attr:`buf` is alive."""
        self.buf.release()
        if self._mmap is not None:
            self._mmap.close()
            self._mmap = None


def create(nbytes: int, owner_pid: int | None = None, name: str | None = None) -> Segment:
    """Create a segment of ``nbytes`` (at least 1) owned by ``owner_pid``.

    ``name`` (from :func:`segment_name`) lets the owner pick the name before another
    process creates the segment, so the owner can unlink it even if that process dies.
    The caller unlinks it.
    """
    return Segment(name or segment_name(owner_pid), create=True, size=max(1, nbytes))


def room(directory: Path = SHM_DIR) -> tuple[int, int] | None:
    """Bytes free and in all of the filesystem of ``directory``; ``None`` if it cannot
    be asked."""
    try:
        stat = os.statvfs(directory)
    except OSError:
        return None
    return stat.f_bavail * stat.f_frsize, stat.f_blocks * stat.f_frsize


def check_room(name: str, nbytes: int, directory: Path = SHM_DIR) -> None:
    """Refuse to decode into shared memory that cannot hold the image.

    A segment larger than the free space of ``/dev/shm`` is created without complaint
    and kills the worker with SIGBUS when the decoder reaches the missing pages.
    """
    space = room(directory)
    if space is None:  # no /dev/shm to ask: let creation itself fail if it must
        return
    free = space[0]
    if nbytes > free:
        raise ImageTooLarge(
            f"{name}: decoding it needs {nbytes / 2**20:,.0f} MiB of shared memory but "
            f"{directory} has {free / 2**20:,.0f} MiB free; enlarge {directory} "
            "(e.g. docker run --shm-size) or convert the image to a tiled TIFF, "
            "which is read without decoding it whole"
        )


def bus_error_note(directory: Path = SHM_DIR) -> str:
    """What to add to the report of a process killed by SIGBUS: how full ``directory``
    is, and with it nearly full, what to do. A page of a segment that the tmpfs has no
    room for kills whoever touches it first with SIGBUS, not with an error to catch;
    a worker writing a tile into a slot, say, when other programs filled /dev/shm (or
    a container gave it the 64 MiB default)."""
    space = room(directory)
    if space is None:
        return ""
    free, total = space
    note = f"; {directory} has {free / 2**20:,.1f} MiB free of {total / 2**20:,.1f} MiB"
    if free < total * 0.05:
        note += (f": SIGBUS is how a process learns that shared memory in {directory} is"
                 f" full; free some or enlarge it (e.g. docker run --shm-size)")
    return note


def attach(name: str) -> Segment:
    """Open an existing segment without taking ownership of it."""
    return Segment(name)


def unlink(name: str) -> None:
    """Remove a segment by name; a segment already gone is fine."""
    try:
        _posixshmem.shm_unlink("/" + name.lstrip("/"))
    except FileNotFoundError:
        pass


def alive(pid: int) -> bool:
    """Whether a process with this pid exists (it may belong to another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep(directory: Path = SHM_DIR) -> list[str]:
    """Unlink segments whose owner process is gone; return their names."""
    removed = []
    if not directory.is_dir():
        return removed
    for entry in directory.iterdir():
        if not entry.name.startswith(PREFIX):
            continue
        try:
            pid = int(entry.name[len(PREFIX) :].split("_", 1)[0])
        except ValueError:
            continue
        if not alive(pid):
            try:
                entry.unlink()
                removed.append(entry.name)
            except FileNotFoundError:
                pass
    return removed


@dataclass(frozen=True)
class SlotRef:
    """Where a tile lies in a :class:`SlotPool`: segment, slot, and its shape."""

    segment: str
    slot: int
    height: int
    width: int
    bands: int


class SlotPool:
    """A pool of equal slots in one segment, allocated by the coordinator.

    Workers attach the segment by name and read or write the slot a task names.
    """

    def __init__(self, slot_bytes: int, slots: int) -> None:
        self.slot_bytes = slot_bytes
        self.slots = slots
        self._shm = create(slot_bytes * slots)
        self._free = list(range(slots - 1, -1, -1))

    @property
    def name(self) -> str:
        """The segment's name."""
        return self._shm.name

    def available(self) -> int:
        """Free slots."""
        return len(self._free)

    def take(self) -> int:
        """A free slot index; :class:`RuntimeError` if none is left (the caller bounds use)."""
        if not self._free:
            raise RuntimeError("shared-memory slot pool exhausted")
        return self._free.pop()

    def give(self, slot: int) -> None:
        """Return a slot to the pool."""
        self._free.append(slot)

    def view(self, ref: SlotRef) -> np.ndarray:
        """The array in a slot of this pool (coordinator side)."""
        return slot_array(self._shm, self.slot_bytes, ref)

    def close(self) -> None:
        """Unlink the segment."""
        self._shm.close()
        unlink(self._shm.name)


def slot_array(shm: Segment, slot_bytes: int, ref: SlotRef) -> np.ndarray:
    """A ``(height, width, bands)`` uint8 view of slot ``ref.slot`` in ``shm``."""
    n = ref.height * ref.width * ref.bands
    if n > slot_bytes:
        raise ValueError(f"{n} bytes do not fit a slot of {slot_bytes}")
    start = ref.slot * slot_bytes
    return np.ndarray((ref.height, ref.width, ref.bands), np.uint8, shm.buf, start)


class Attached:
    """Worker-side cache of attached segments, so a segment is mapped once per process."""

    def __init__(self) -> None:
        self._segments: dict[str, Segment] = {}

    def get(self, name: str) -> Segment:
        """The segment called ``name``, attaching it on first use."""
        shm = self._segments.get(name)
        if shm is None:
            shm = self._segments[name] = attach(name)
        return shm

    def drop(self, name: str) -> None:
        """Forget a segment (after the coordinator unlinked it)."""
        shm = self._segments.pop(name, None)
        if shm is not None:
            try:
                shm.close()
            except BufferError:  # a view is still alive; the mapping goes with the process
                pass

    def close(self) -> None:
        """Detach everything."""
        for name in list(self._segments):
            self.drop(name)
