"""Page 0 of a TIFF, opened with tifffile, with its segment table as int64 arrays.

tifffile reads a page's segment offsets and byte counts into tuples of Python ints as
it builds the page, and decoding a segment (``page.decode``) needs the page. At
65536² in 256² tiles that is 131,072 ints in every process that opens the file; freed,
they leave Python's memory arenas pinned by the few objects made between them, so a
worker grew by 3 MiB and the build's coordinator by 3-4 MiB from 16k² to 64k². A
striped file is the same: GDAL writes a wide uncompressed image one row per strip.

So the page's two tables are read here, straight from the file as arrays, and
tifffile is shown the file with the two entries of the directory rewritten as
one-segment tables (the first segment's offset and byte count), which it reads as it
would any other small tag. tifffile decodes a segment from its bytes and index alone
(a strip's rows from RowsPerStrip, which is left as it is), and what it reads from the
first segment itself (whether the JPEG data is JFIF) it finds through the one-segment
tables. Anything else (tables small enough to lie in their entries, NDPI's 64-bit
extension of classic TIFF, directories this reader does not follow) is opened by
tifffile as it is, and its tables converted.
"""

from __future__ import annotations

import io
import logging
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

#: Tags of the segment tables (offsets, byte counts) read here as arrays: of tiles, and
#: of strips when the page has no tile table.
TILE_TABLE, STRIP_TABLE = (324, 325), (273, 279)

#: Tags holding a segment table.
_TABLE_TAGS = STRIP_TABLE + TILE_TABLE

#: Field types a segment table may have: SHORT, LONG, LONG8, with their struct codes.
_TABLE_TYPES = {3: "H", 4: "I", 16: "Q"}

#: NDPI's private tag: classic TIFF with 64-bit offsets, which tifffile patches itself.
_NDPI_MARK = 65420


@dataclass(frozen=True)
class _Layout:
    """Classic TIFF or BigTIFF: how a directory and its entries are laid out."""

    order: str  # struct byte order, "<" or ">"
    count: str  # struct code of a directory's entry count
    entry: str  # struct codes of an entry: tag, type, count, value or offset
    inline: int  # bytes of value that fit in an entry
    table_type: int  # field type of a one-segment table written into an entry


@dataclass(frozen=True)
class _Table:
    """A segment table as it lies in the file."""

    entry: int  # file offset of its directory entry
    code: int
    dtype: np.dtype
    count: int
    offset: int  # file offset of its values


def _layout(head: bytes) -> tuple[_Layout, int] | None:
    """The file's layout and the offset of its first directory, from its first 16 bytes."""
    order = {b"II": "<", b"MM": ">"}.get(head[:2])
    if order is None or len(head) < 16:
        return None
    version = struct.unpack(order + "H", head[2:4])[0]
    if version == 42:
        return _Layout(order, "H", "HHII", 4, 4), struct.unpack(order + "I", head[4:8])[0]
    if version == 43:
        return _Layout(order, "Q", "HHQQ", 8, 16), struct.unpack(order + "Q", head[8:16])[0]
    return None


def _segment_tables(fd: int, size: int) -> tuple[_Layout, _Table, _Table] | None:
    """Where the first directory's segment offsets and byte counts lie (the tile
    table's, else the strip table's), when both lie outside their entries and in the
    file; ``None`` for anything else.

    Raises :class:`ValueError` for a file cut short before the end of its first
    directory or of the segment table it lists, which tifffile reports only as a
    stream of warnings and an empty table or an ``IndexError``.
    """
    found = _layout(os.pread(fd, 16, 0))
    if found is None:
        return None
    layout, ifd = found
    count_size = struct.calcsize(layout.order + layout.count)
    entry_size = struct.calcsize(layout.order + layout.entry)
    head = os.pread(fd, count_size, ifd)
    if len(head) < count_size:
        raise ValueError(_past_the_end("its first directory", ifd, size))
    entries = struct.unpack(layout.order + layout.count, head)[0]
    if entries > 4096:  # tifffile's own limit: let it say what is wrong
        return None
    data = os.pread(fd, entries * entry_size, ifd + count_size)
    if len(data) < entries * entry_size:
        raise ValueError(_past_the_end(f"its first directory's {entries} entries", ifd, size))
    tables: dict[int, _Table | None] = {}
    past: dict[int, int] = {}
    for i in range(entries):
        code, kind, count, value = struct.unpack_from(layout.order + layout.entry, data, i * entry_size)
        if code == _NDPI_MARK:
            return None
        if code not in _TABLE_TAGS:
            continue
        if code in tables:  # a tag twice: tifffile decides which one counts
            return None
        fmt = _TABLE_TYPES.get(kind)
        nbytes = count * struct.calcsize(fmt or "B")
        if fmt is None or count < 1 or nbytes <= layout.inline or value + nbytes > size:
            tables[code] = None  # left to tifffile, and with it the other of its pair
            if fmt is not None and nbytes > layout.inline and value + nbytes > size:
                past[code] = value
            continue
        entry = ifd + count_size + i * entry_size
        tables[code] = _Table(entry, code, np.dtype(layout.order + fmt), count, value)
    # tifffile takes the tile table when there is one, whatever strip tags there are
    pair = TILE_TABLE if any(code in tables for code in TILE_TABLE) else STRIP_TABLE
    for code in pair:
        if code in past:
            what = ("tile" if pair == TILE_TABLE else "strip") + (
                " offsets" if code == pair[0] else " byte counts")
            raise ValueError(_past_the_end(f"its {what}", past[code], size))
    offsets, counts = (tables.get(code) for code in pair)
    if offsets is None or counts is None:
        return None
    return layout, offsets, counts


def _past_the_end(what: str, at: int, size: int) -> str:
    return (f"the file ends at byte {size:,}, before the end of {what} (at byte {at:,}):"
            " truncated, or not a TIFF")


class _PatchedFile(io.RawIOBase):
    """A file read through its descriptor as if some of its bytes were others."""

    def __init__(self, path: Path, fd: int, size: int, patches: dict[int, bytes]) -> None:
        super().__init__()
        self.name = str(path)
        self._fd = fd
        self._size = size
        self._pos = 0
        self._patches = patches

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise OSError(f"seek to {base + offset} before the start of {self.name}")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")  # any writable buffer, a numpy array too
        data = os.pread(self._fd, len(view), self._pos)
        n = len(data)
        view[:n] = data
        for start, new in self._patches.items():
            lo, hi = max(start, self._pos), min(start + len(new), self._pos + n)
            if lo < hi:
                view[lo - self._pos : hi - self._pos] = new[lo - start : hi - start]
        self._pos += n
        return n


@dataclass
class FirstPage:
    """Page 0 of an open TIFF; its segment table is not on the page (``dataoffsets``
    and ``databytecounts`` are empty) but read on demand by :meth:`segment_table`."""

    page: tifffile.TiffPage
    #: The file, open for reading (``os.pread``) until the block ends.
    fd: int
    #: Its size in bytes when it was opened.
    size: int
    _tables: tuple[_Table, _Table] | tuple[np.ndarray, np.ndarray]

    def segment_table(self) -> tuple[np.ndarray, np.ndarray]:
        """The segment offsets and byte counts, as int64 arrays."""
        offsets, counts = self._tables
        if isinstance(offsets, np.ndarray) and isinstance(counts, np.ndarray):
            return offsets, counts
        assert isinstance(offsets, _Table) and isinstance(counts, _Table)
        return _read_table(self.fd, offsets), _read_table(self.fd, counts)

    def segment_count(self) -> int:
        """Entries in the shorter of the two tables."""
        offsets, counts = self._tables
        return min(_entries(offsets), _entries(counts))


def _entries(table: _Table | np.ndarray) -> int:
    return table.count if isinstance(table, _Table) else len(table)


def _read_table(fd: int, table: _Table) -> np.ndarray:
    nbytes = table.count * table.dtype.itemsize
    data = os.pread(fd, nbytes, table.offset)
    if len(data) < nbytes:  # the file shrank since its directory was read
        raise OSError(f"the segment table at byte {table.offset:,} ends past the end of the file")
    values = np.frombuffer(data, table.dtype)
    if table.dtype.itemsize == 8 and values.size and values.max() >= 1 << 63:
        raise ValueError(f"a segment table at byte {table.offset:,} holds offsets past 2**63")
    return values.astype(np.int64)


def _one_segment_entry(layout: _Layout, table: _Table, first: int) -> bytes:
    return struct.pack(layout.order + layout.entry, table.code, layout.table_type, 1, first)


def _first_value(fd: int, table: _Table) -> int:
    data = os.pread(fd, table.dtype.itemsize, table.offset)
    return int(np.frombuffer(data, table.dtype)[0])


def _take_table(page: tifffile.TiffPage) -> tuple[np.ndarray, np.ndarray]:
    """The page's segment tables as arrays, let go of by the page and its tags."""
    page.is_jfif  # noqa: B018 - tifffile reads it from the first segment, when asked
    offsets = np.asarray(page.dataoffsets, np.int64)
    counts = np.asarray(page.databytecounts, np.int64)
    page.dataoffsets = page.databytecounts = ()
    for code in _TABLE_TAGS:
        tag = page.tags.get(code)
        if tag is not None:
            tag.value = None  # tifffile reads it again from the file if ever asked
    return offsets, counts


class _Captured(logging.Filter):
    """Keeps what tifffile logs, instead of letting it reach the log."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        # "<tifffile.TiffPages @18874376> invalid offset ...": the object is noise here
        message = record.getMessage()
        self.messages.append(message.split("> ", 1)[1] if message.startswith("<") else message)
        return False


def _open(file: Path | _PatchedFile) -> tuple[tifffile.TiffFile, tifffile.TiffPage]:
    """tifffile's view of ``file`` and its first page.

    What tifffile logs while it reads the page is not logged: these are warnings about
    the file (and, for a strip table read here, that the page lists one strip of
    many), which the page's own checks or the build's errors report in one line.
    When it fails with a bare ``IndexError`` or ``KeyError``, the first of them says
    why.
    """
    log, captured = logging.getLogger("tifffile"), _Captured()
    log.addFilter(captured)
    try:
        tif = tifffile.TiffFile(file)
        try:
            return tif, tif.pages.first
        except BaseException:
            tif.close()
            raise
    except (IndexError, KeyError) as exc:
        if captured.messages:
            raise ValueError(captured.messages[0]) from exc
        raise
    finally:
        log.removeFilter(captured)


@contextmanager
def first_page(path: Path) -> Iterator[FirstPage]:
    """Page 0 of the TIFF at ``path``, open until the block ends.

    tifffile's errors for a file it cannot read pass through; a file cut short before
    the end of its first directory or segment table raises :class:`ValueError`.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        found = _segment_tables(fd, size)
        if found is None:
            tif, page = _open(path)
            with tif:
                yield FirstPage(page, fd, size, _take_table(page))
            return
        layout, offsets, counts = found
        patches = {
            table.entry: _one_segment_entry(layout, table, _first_value(fd, table))
            for table in (offsets, counts)
        }
        with _PatchedFile(path, fd, size, patches) as view:
            tif, page = _open(view)
            with tif:
                _take_table(page)  # the one-segment tables
                yield FirstPage(page, fd, size, (offsets, counts))
    finally:
        os.close(fd)
