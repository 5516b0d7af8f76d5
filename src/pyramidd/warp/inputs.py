"""The input raster of a warp: its header (coordinator) and its piece readers (worker).

Pieces follow the layout of the file where it has one, so a piece read is one
decode: a tile of a tiled TIFF, a strip of a striped TIFF (both read straight with
``tifffile``, counting the bytes fetched). Other inputs are opened through the
source plugins (a region read per piece) or, when no plugin reads them, decoded once
with Pillow / numpy and cut into pieces of that array.
"""

from __future__ import annotations

import dataclasses
import os
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, UnsupportedInput
from ..formats import RegionReader, Source
from ..options import BuildOptions
from ..sources.tiff import decode_segment, read_rows
from ..sources.tiffpage import first_page
from .geotiff import TIFF_SUFFIXES


@dataclass(frozen=True)
class InputHeader:
    """Size and bands of the input, and the plugin source that reads it (if any)."""

    width: int
    height: int
    bands: int
    source: Any = None  # a pyramidd Source, pickled to workers with the warp


def without_warp(options: BuildOptions) -> BuildOptions:
    """The same options with warping switched off, to open the input itself."""
    extra = dict(options.extra)
    extra["warp"] = False
    return dataclasses.replace(options, extra=extra)


def _tiff_usable(page: Any, segments: int) -> bool:
    # Only layouts whose decoded samples are already the output bands; anything
    # needing conversion (palette, MinIsWhite, YCbCr, 16-bit, planar) goes through
    # the TIFF source plugin instead.
    spp = page.samplesperpixel
    photometric = int(page.photometric)
    return (
        page.dtype == np.uint8
        and ((photometric == 1 and spp in (1, 2)) or (photometric == 2 and spp in (3, 4)))
        and (spp == 1 or page.planarconfig == 1)
        and page.imagedepth == 1
        and segments > 0
    )


def read_header(path: Path, options: BuildOptions) -> InputHeader:
    """The input's header, read through the source plugins when one reads it.

    Runs in the coordinator and reads headers only (a ``.npy`` is memory-mapped).
    """
    from .. import plugins

    try:
        source: Source = plugins.load().registry.probe(path, without_warp(options))
        return InputHeader(source.width, source.height, source.bands, source)
    except UnsupportedInput:
        pass
    if not path.is_file():
        raise InputError(f"{path}: no such file; check the path of the image the GCPs belong to")
    if path.suffix.lower() in TIFF_SUFFIXES:
        with ExitStack() as stack:
            try:
                first = stack.enter_context(first_page(path))
            except Exception as exc:
                raise InputError(f"{path.name}: not a readable TIFF ({exc})") from None
            page = first.page
            if _tiff_usable(page, first.segment_count()):
                return InputHeader(page.imagewidth, page.imagelength, page.samplesperpixel)
    if path.suffix.lower() == ".npy":
        arr = np.load(path, mmap_mode="r")
        return InputHeader(arr.shape[1], arr.shape[0], 1 if arr.ndim == 2 else arr.shape[2])
    from PIL import Image

    try:
        with Image.open(path) as img:
            bands = {"1": 1, "L": 1, "LA": 2, "P": 4, "RGB": 3, "RGBA": 4}.get(img.mode)
            if bands is None:
                raise InputError(
                    f"{path.name}: {img.mode} images cannot be warped; convert to 8-bit L, RGB or RGBA"
                )
            return InputHeader(img.width, img.height, bands)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path.name}: cannot read the image to warp ({exc})") from None


#: Rows of the pieces an uncompressed TIFF tile is read in. A rotated warp needs a
#: slanted band of each tile at a time; caching quarter tiles holds four times as
#: many distinct places of the input in the same bytes (a 30° turn of 20000² read
#: 1.23x the input through a 32 MiB cache per worker in whole tiles, 1.16x in quarters).
SUBTILE_ROWS = 64


class TiffPieces:
    """Tiles or strips of an 8-bit TIFF, read with ``pread`` and decoded by tifffile.

    Uncompressed tiles are read in pieces of :data:`SUBTILE_ROWS` rows straight from
    the file: their bytes are rows of the tile one after the other.
    """

    def __init__(self, path: Path) -> None:
        with ExitStack() as stack:
            first = stack.enter_context(first_page(path))
            if not _tiff_usable(first.page, first.segment_count()):
                raise ValueError("TIFF layout not read piecewise")
            self._offsets, self._counts = first.segment_table()
            self._close_file = stack.pop_all().close
        self._page = page = first.page
        self._name = path.name
        self.width = int(page.imagewidth)
        self.height = int(page.imagelength)
        self.bands = int(page.samplesperpixel)
        #: Pieces a segment (tile or strip) is cut into, top to bottom.
        self._split = 1
        if page.is_tiled:
            self.piece_rows, self.piece_cols = int(page.tilelength), int(page.tilewidth)
            if page.compression == 1 and self.piece_rows % SUBTILE_ROWS == 0:
                self._split = self.piece_rows // SUBTILE_ROWS
                self.piece_rows = SUBTILE_ROWS
        else:
            self.piece_rows, self.piece_cols = min(int(page.rowsperstrip) or self.height, self.height), self.width
        self._across = -(-self.width // self.piece_cols)
        self._fd, self._size = first.fd, first.size
        self.bytes_read = 0

    def read_piece(self, prow: int, pcol: int) -> np.ndarray:
        """Decode one tile or strip (or read a piece of an uncompressed tile), clipped to
        the image."""
        index = (prow // self._split) * self._across + pcol
        rows = min(self.piece_rows, self.height - prow * self.piece_rows)
        cols = min(self.piece_cols, self.width - pcol * self.piece_cols)
        count = int(self._counts[index])
        if count == 0:  # sparse file: an empty tile reads as zeros
            return np.zeros((rows, cols, self.bands), np.uint8)
        if self._split > 1:
            return self._read_rows(index, prow % self._split, rows, cols)
        seg, _ = decode_segment(self._page, self._fd, self._size, self._name, index,
                                int(self._offsets[index]), count, jpegtables=self._page.jpegtables)
        assert seg is not None  # count > 0
        self.bytes_read += count
        seg = seg.reshape(seg.shape[-3], seg.shape[-2], -1)
        return seg[:rows, :cols]

    def _read_rows(self, index: int, part: int, rows: int, cols: int) -> np.ndarray:
        """Rows of part ``part`` of uncompressed tile ``index``, from the file."""
        row_bytes = self.piece_cols * self.bands
        data = read_rows(self._fd, self._name, f"tile {index}", int(self._offsets[index]),
                         int(self._counts[index]), part * self.piece_rows * row_bytes,
                         rows * row_bytes)
        self.bytes_read += len(data)
        piece = np.frombuffer(data, np.uint8).reshape(rows, self.piece_cols, self.bands)
        return piece[:, :cols]

    def close(self) -> None:
        """Close the file."""
        self._fd = -1
        self._close_file()


class ArrayPieces:
    """Pieces of an image already in memory (decoded once)."""

    def __init__(self, array: np.ndarray, piece_rows: int = 256, piece_cols: int = 256) -> None:
        if array.ndim == 2:
            array = array[:, :, None]
        self._array = array
        self.height, self.width, self.bands = (int(v) for v in array.shape)
        self.piece_rows = max(1, min(piece_rows, self.height))
        self.piece_cols = max(1, min(piece_cols, self.width))
        self.bytes_read = 0

    def read_piece(self, prow: int, pcol: int) -> np.ndarray:
        """A copy of one piece (a copy, so the cache budget is what it holds)."""
        r, c = prow * self.piece_rows, pcol * self.piece_cols
        piece = np.array(self._array[r : r + self.piece_rows, c : c + self.piece_cols])
        self.bytes_read += piece.nbytes
        return piece

    def close(self) -> None:
        """Drop the array."""
        self._array = np.zeros((0, 0, self.bands), np.uint8)


class RegionPieces:
    """Pieces read as regions from a source plugin's :class:`RegionReader`."""

    def __init__(
        self, reader: RegionReader, width: int, height: int, bands: int,
        piece_rows: int = 256, piece_cols: int = 256,
    ) -> None:
        self._reader = reader
        self.width, self.height, self.bands = width, height, bands
        self.piece_rows = max(1, min(piece_rows, height))
        self.piece_cols = max(1, min(piece_cols, width))
        self.bytes_read = 0

    def read_piece(self, prow: int, pcol: int) -> np.ndarray:
        """One region read; copied because the reader may reuse its buffer."""
        r, c = prow * self.piece_rows, pcol * self.piece_cols
        h = min(self.piece_rows, self.height - r)
        w = min(self.piece_cols, self.width - c)
        piece = np.array(self._reader.read_region(c, r, w, h))
        if piece.ndim == 2:
            piece = piece[:, :, None]
        self.bytes_read += piece.nbytes
        return piece

    def close(self) -> None:
        """Close the plugin's reader."""
        self._reader.close()


def _decode(path: Path) -> np.ndarray:
    if path.suffix.lower() == ".npy":
        return np.load(path)
    from PIL import Image

    with Image.open(path) as img:
        if img.mode == "P":
            img = img.convert("RGBA")
        elif img.mode == "1":
            img = img.convert("L")
        return np.asarray(img)


def open_pieces(
    path: Path, header: InputHeader, piece: tuple[int, int] | None = None
) -> Any:
    """A piece reader for the input. Runs in a render worker.

    ``piece`` ``(cols, rows)`` forces the piece shape (``(width, 1)`` reads plain
    scanlines); it applies to inputs that are not read as TIFF tiles or strips.
    """
    if piece is None and path.suffix.lower() in TIFF_SUFFIXES:
        try:
            return TiffPieces(path)
        except (ValueError, OSError):
            pass
    cols, rows = piece if piece is not None else (256, 256)
    if header.source is not None:
        return RegionPieces(header.source.open(), header.width, header.height, header.bands, rows, cols)
    return ArrayPieces(_decode(path), rows, cols)
