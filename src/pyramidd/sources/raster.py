"""A decoded image in a shared-memory segment, and helpers every built-in source shares.

:class:`RasterSource` is what a :class:`~pyramidd.sources.pillow.PillowSource`
prepares into: one render worker decodes the file once into a segment, and every
worker then opens that segment and reads regions as slices of it, without copying.
The coordinator unlinks the segment when the build ends (the prepared source's
``release``), so a raster source never unlinks anything itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .. import shm
from ..errors import ImageTooLarge, InputError
from ..options import BuildOptions
from .convert import Conversion


def open_input(path: Path) -> BinaryIO | None:
    """Open an input for reading its signature; ``None`` for a folder, which no raster
    source reads. A missing or unreadable file is an :class:`InputError`."""
    try:
        return open(path, "rb")
    except IsADirectoryError:
        return None
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read it: {exc.strerror or exc}") from None


def check_size(name: str, width: int, height: int, options: BuildOptions) -> None:
    """Refuse images with no pixels or with more than ``options.max_pixels``.

    Every built-in source calls this from ``probe``, on the header's size, before
    anything is decoded: it is pyramidd's decompression-bomb guard.
    """
    if width < 1 or height < 1:
        raise InputError(f"{name}: the image has no pixels ({width}x{height})")
    pixels = width * height
    if pixels > options.max_pixels:
        raise ImageTooLarge(
            f"{name}: {width}x{height} is {pixels:,} pixels, over the limit of "
            f"{options.max_pixels:,}; if you trust this file, raise the limit with "
            f"--max-pixels {pixels} (max_pixels in the service's configuration)"
        )


def check_region(width: int, height: int, x: int, y: int, w: int, h: int) -> None:
    """Raise :class:`ValueError` for a rectangle not inside a ``width x height`` image.

    The engine only asks for rectangles inside the image; anything else is a bug.
    """
    if w < 1 or h < 1 or x < 0 or y < 0 or x + w > width or y + h > height:
        raise ValueError(
            f"region {w}x{h}+{x}+{y} is not inside the {width}x{height} image"
        )


class ArrayReader:
    """A :class:`~pyramidd.formats.RegionReader` over an array of raw samples.

    ``array`` is ``(h, w)`` or ``(h, w, samples)`` (an in-memory array, a memmap or a
    view of shared memory); regions are sliced from it and converted by
    ``conversion``. When the conversion is the identity, regions are views.
    """

    def __init__(self, array: np.ndarray, conversion: Conversion) -> None:
        self.array = array
        self.conversion = conversion
        self.height, self.width = array.shape[:2]

    def read_region(self, x: int, y: int, w: int, h: int) -> np.ndarray:
        """Pixels of ``[x, x+w) x [y, y+h)`` as ``(h, w, bands)`` uint8."""
        check_region(self.width, self.height, x, y, w, h)
        return self.conversion.apply(self.array[y : y + h, x : x + w])

    def close(self) -> None:
        """Drop the array (a memmap closes when nothing else refers to it)."""
        self.array = np.empty((0, 0), np.uint8)


@dataclass(frozen=True)
class RasterSource:
    """A decoded 8-bit image in the shared-memory segment ``segment``.

    The segment holds the image's rows ``[first_row, first_row + rows)`` (all of
    them unless it is one band of a banded build, see :mod:`pyramidd.bands`), row by
    row, bands interleaved. Made by a prepared source in one render worker; opened by
    every worker; the segment belongs to the coordinator, which unlinks it.
    """

    segment: str
    width: int
    height: int
    bands: int
    #: The input file, for messages.
    path: Path
    first_row: int = 0
    #: Rows in the segment; ``None``: all of the image's.
    rows: int | None = None

    @property
    def held_rows(self) -> int:
        """Rows of pixels in the segment."""
        return self.height if self.rows is None else self.rows

    @property
    def nbytes(self) -> int:
        """Bytes of pixels in the segment."""
        return self.width * self.held_rows * self.bands

    def open(self) -> "RasterReader":
        """Attach the segment. Runs in a render worker."""
        try:
            segment = shm.attach(self.segment)
        except FileNotFoundError:
            raise InputError(
                f"{self.path.name}: its decoded pixels are gone from shared memory "
                "(the build was cancelled or /dev/shm was cleaned); run it again"
            ) from None
        return RasterReader(segment, self)


class RasterReader:
    """Regions of a :class:`RasterSource`, as views of the attached segment."""

    def __init__(self, segment: shm.Segment, source: RasterSource) -> None:
        self._segment: shm.Segment | None = segment
        self.source = source
        self.array: np.ndarray = pixels_view(
            segment.buf, source.held_rows, source.width, source.bands
        )

    def read_region(self, x: int, y: int, w: int, h: int) -> np.ndarray:
        """Pixels of ``[x, x+w) x [y, y+h)`` as a ``(h, w, bands)`` view."""
        check_region(self.source.width, self.source.height, x, y, w, h)
        y -= self.source.first_row
        if y < 0 or y + h > self.source.held_rows:
            raise ValueError(
                f"rows {y + self.source.first_row}..{y + h + self.source.first_row} are not"
                f" in the band of rows {self.source.first_row}.."
                f"{self.source.first_row + self.source.held_rows}"
            )
        return self.array[y : y + h, x : x + w]

    def close(self) -> None:
        """Detach the segment (it stays mapped while a returned view is alive)."""
        self.array = np.empty((0, 0, self.source.bands), np.uint8)
        segment, self._segment = self._segment, None
        if segment is not None:
            try:
                segment.close()
            except BufferError:
                # A caller still holds a view; the mapping goes when the view does.
                pass


def pixels_view(buffer: memoryview, height: int, width: int, bands: int) -> np.ndarray:
    """The ``(height, width, bands)`` uint8 array at the start of ``buffer``."""
    return np.ndarray((height, width, bands), np.uint8, buffer, 0)
