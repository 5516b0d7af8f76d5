"""The TIFF / BigTIFF source: region reads that decode only the segments they touch.

A TIFF stores its first page (the full-resolution one in a pyramidal file; other
pages are ignored) as *segments*: tiles, or strips of whole rows. A region read
finds the segments that intersect the rectangle through the page's segment offsets
and byte counts, reads their bytes and decodes each with tifffile's ``page.decode``
(any compression tifffile decodes: none, LZW, Deflate, JPEG, ZSTD, PackBits, WebP,
...). Decoded segments are kept, already converted to 8 bits, in a bounded LRU cache
(:attr:`TiffReader.cache_bytes`, 32 MiB by default), because neighbouring regions
overlap segment boundaries: read in Z-order in 254-pixel regions, each 256-pixel tile
of a large image is decoded about 1.1 times.

Uncompressed strips are not decoded as segments: their rows are read straight from
the file a few at a time (:data:`RAW_STRIP_BYTES`), so an image stored as one huge
strip never has to fit in a worker.

Tiled and striped, contiguous and separate planar configuration, 1 to 4 samples of
1, 2, 4, 8 or 16 bits are read; samples convert by the rule in
:mod:`pyramidd.sources.convert`: MinIsWhite is inverted; palette becomes RGB (a
colour map that plainly holds 8-bit colours is read as such); CMYK, YCbCr and
CIELab become RGB; 16-bit becomes 8-bit by ``(v + 128) // 257``; the first extra
sample is alpha and any further ones are dropped.
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from ..errors import InputError
from ..options import BuildOptions
from .convert import Conversion, palette_table, unsupported
from .raster import check_region, check_size, open_input
from .tiffpage import first_page

#: First four bytes of a classic TIFF and of a BigTIFF, in either byte order.
MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")

#: Default budget of a reader's decoded-segment cache.
DEFAULT_CACHE_BYTES = 32 << 20

#: The cache holds at least this many segments, whatever its budget in bytes.
MIN_CACHED_SEGMENTS = 4

#: Uncompressed strips are read in pieces of about this many bytes.
RAW_STRIP_BYTES = 1 << 20

_JPEG = {6, 7, 33007, 34892}
_ALPHA = {1, 2}  # ExtraSamples: associated, unassociated alpha


@dataclass(frozen=True)
class TiffSource:
    """Page 0 of a TIFF file: its size, bands, and how its samples convert."""

    path: Path
    width: int
    height: int
    bands: int
    conversion: Conversion
    #: Budget in bytes of each reader's cache of decoded segments.
    cache_bytes: int = DEFAULT_CACHE_BYTES

    def open(self) -> "TiffReader":
        """Open the file for region reads. Runs in a render worker."""
        return TiffReader(self.path, self.conversion, self.cache_bytes)


class SegmentCache:
    """Least-recently-used decoded segments, bounded by their total size in bytes.

    The segment just added is always kept, even alone over the budget: a region read
    needs it.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._items: OrderedDict[Any, np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Any) -> np.ndarray | None:
        """The array stored under ``key`` (now the most recently used), or ``None``."""
        array = self._items.get(key)
        if array is not None:
            self._items.move_to_end(key)
        return array

    def put(self, key: Any, array: np.ndarray) -> None:
        """Store ``array``, evicting the least recently used beyond the budget."""
        old = self._items.pop(key, None)
        if old is not None:
            self.nbytes -= old.nbytes
        self._items[key] = array
        self.nbytes += array.nbytes
        while self.nbytes > self.max_bytes and len(self._items) > 1:
            _, evicted = self._items.popitem(last=False)
            self.nbytes -= evicted.nbytes

    def clear(self) -> None:
        """Forget everything."""
        self._items.clear()
        self.nbytes = 0


def _library_error(name: str, what: str, exc: BaseException) -> InputError:
    """:class:`InputError` for file ``name``: ``what`` failed, with the first line of
    the library's own message."""
    text = str(exc).strip().splitlines()
    detail = text[0] if text else type(exc).__name__
    return InputError(f"{name}: {what}: {detail}")


class TiffReader:
    """Region reads of page 0 of a TIFF file, decoding only the segments they touch."""

    def __init__(
        self,
        path: Path,
        conversion: Conversion,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        raw_strip_bytes: int = RAW_STRIP_BYTES,
    ) -> None:
        """Open ``path``; keep up to ``cache_bytes`` of decoded segments (and at least
        :data:`MIN_CACHED_SEGMENTS`); read uncompressed strips in pieces of about
        ``raw_strip_bytes``."""
        self.path = Path(path)
        self.conversion = conversion
        self.cache_bytes = cache_bytes
        #: Segments decoded so far (one per plane of a separate-planar segment).
        self.decode_count = 0
        name = self.path.name
        with ExitStack() as stack:
            try:
                first = stack.enter_context(first_page(self.path))
                self._offsets, self._counts = first.segment_table()
            except Exception as exc:  # any failure to parse the file is the input's fault
                raise _library_error(name, "not a readable TIFF", exc) from None
            self._close_file = stack.pop_all().close
        self._page = page = first.page
        self._fd, self._size = first.fd, first.size
        self.width, self.height = page.imagewidth, page.imagelength
        self.seg_h, self.seg_w = _segment_shape(page)
        self.rows = math.ceil(self.height / self.seg_h)
        self.cols = math.ceil(self.width / self.seg_w)
        self.planes = page.samplesperpixel if page.planarconfig == 2 else 1
        self._decode_kwargs: dict[str, Any] = {}
        if page.compression in _JPEG:
            self._decode_kwargs = {
                "jpegtables": page.jpegtables,
                "jpegheader": page.keyframe.jpegheader,
            }
        # Uncompressed strips are read a few rows at a time straight from the file,
        # so a file stored as one huge strip is never decoded whole.
        self._raw_dtype: np.dtype | None = None
        self._strip_rows = self.seg_h
        if not page.is_tiled and _plain_samples(page):
            self._raw_dtype = page.dtype.newbyteorder(page.parent.byteorder)
            self._row_bytes = self.width * self._contig * self._raw_dtype.itemsize
            self.seg_h = max(1, min(self.seg_h, raw_strip_bytes // self._row_bytes))
            self.rows = math.ceil(self.height / self.seg_h)
        # Whatever the budget, keep the 2x2 segments a region can straddle: with less,
        # each read of the next region would decode the same huge segments again.
        segment_bytes = self.seg_h * self.seg_w * conversion.bands
        self._cache = SegmentCache(max(cache_bytes, MIN_CACHED_SEGMENTS * segment_bytes))

    @property
    def _contig(self) -> int:
        """Samples interleaved in one segment."""
        return 1 if self.planes > 1 else self._page.samplesperpixel

    def read_region(self, x: int, y: int, w: int, h: int) -> np.ndarray:
        """Pixels of ``[x, x+w) x [y, y+h)`` as ``(h, w, bands)`` uint8.

        A view of a cached segment when the rectangle lies inside one.
        """
        check_region(self.width, self.height, x, y, w, h)
        sh, sw = self.seg_h, self.seg_w
        r0, r1 = y // sh, (y + h - 1) // sh
        c0, c1 = x // sw, (x + w - 1) // sw
        if r0 == r1 and c0 == c1:
            seg = self.segment(r0, c0)
            return seg[y - r0 * sh : y - r0 * sh + h, x - c0 * sw : x - c0 * sw + w]
        out = np.empty((h, w, self.conversion.bands), np.uint8)
        for r in range(r0, r1 + 1):
            top, bottom = max(y, r * sh), min(y + h, (r + 1) * sh)
            for c in range(c0, c1 + 1):
                left, right = max(x, c * sw), min(x + w, (c + 1) * sw)
                seg = self.segment(r, c)
                out[top - y : bottom - y, left - x : right - x] = seg[
                    top - r * sh : bottom - r * sh, left - c * sw : right - c * sw
                ]
        return out

    def segment(self, row: int, col: int) -> np.ndarray:
        """The converted pixels of segment ``(row, col)`` inside the image, cached."""
        seg = self._cache.get((row, col))
        if seg is None:
            seg = self._decode(row, col)
            self._cache.put((row, col), seg)
        return seg

    def _decode(self, row: int, col: int) -> np.ndarray:
        rh = min(self.seg_h, self.height - row * self.seg_h)
        rw = min(self.seg_w, self.width - col * self.seg_w)
        planes = []
        for plane in range(self.planes):
            if self._raw_dtype is not None:
                planes.append(self._read_rows(plane, row * self.seg_h, rh))
                continue
            index = (plane * self.rows + row) * self.cols + col
            planes.append(self._decode_plane(index, rh, rw))
        raw = planes[0] if len(planes) == 1 else np.concatenate(planes, axis=2)
        try:
            return np.ascontiguousarray(self.conversion.apply(raw))
        except ValueError as exc:  # fewer samples decoded than the header promised
            raise _library_error(self.path.name, f"segment {row},{col} is corrupt", exc) from None

    def _decode_plane(self, index: int, rh: int, rw: int) -> np.ndarray:
        name = self.path.name
        decoded, shape = decode_segment(
            self._page, self._fd, self._size, name, index,
            int(self._offsets[index]), int(self._counts[index]), **self._decode_kwargs,
        )
        self.decode_count += 1
        if decoded is None:  # an empty segment (byte count 0) reads as zeros
            return np.zeros((rh, rw, shape[3]), self._page.dtype)
        plane = decoded[0]
        if plane.shape[0] < rh or plane.shape[1] < rw:
            raise InputError(
                f"{name}: segment {index} decodes to {plane.shape[1]}x{plane.shape[0]} "
                f"pixels, fewer than the {rw}x{rh} it must cover"
            )
        return plane[:rh, :rw]

    def _read_rows(self, plane: int, top: int, count: int) -> np.ndarray:
        """Rows ``[top, top+count)`` of one plane of uncompressed strips, from the file."""
        assert self._raw_dtype is not None
        rps, row_bytes = self._strip_rows, self._row_bytes
        strips = math.ceil(self.height / rps)
        out = bytearray(count * row_bytes)
        y = top
        while y < top + count:
            strip = y // rps
            end = min(top + count, (strip + 1) * rps)
            index = plane * strips + strip
            start = (y - strip * rps) * row_bytes
            data = read_rows(self._fd, self.path.name, f"strip {index}", int(self._offsets[index]),
                             int(self._counts[index]), start, (end - y) * row_bytes)
            out[(y - top) * row_bytes : (end - top) * row_bytes] = data
            y = end
        self.decode_count += 1
        samples = np.frombuffer(out, self._raw_dtype).reshape(count, self.width, self._contig)
        return samples.astype(samples.dtype.newbyteorder("="), copy=False)

    def close(self) -> None:
        """Close the file and drop the cache."""
        self._cache.clear()
        self._fd = -1  # a read after this fails, never reads a file opened since
        self._close_file()


def decode_segment(
    page: tifffile.TiffPage, fd: int, size: int, name: str, index: int, offset: int,
    count: int, **kwargs: Any,
) -> tuple[np.ndarray | None, tuple[int, ...]]:
    """Segment ``index`` of ``page``, ``count`` bytes at ``offset`` of file ``fd``
    (``size`` bytes long), decoded by tifffile with ``kwargs``: its samples (``None``
    for an empty segment) and their shape. :class:`InputError` naming file ``name`` if
    the file ends first or the bytes do not decode."""
    data: bytes | None = None
    if count:
        # Never more than the file holds: a damaged byte count can be 2**64 - 1.
        data = os.pread(fd, max(0, min(count, size - offset)), offset)
        if len(data) < count:
            raise InputError(
                f"{name}: truncated: segment {index} ends at byte {offset + count:,} "
                f"but the file has {size:,}"
            )
    try:
        decoded, _, shape = page.decode(data, index, **kwargs)
    except Exception as exc:  # codec errors are the data's fault, whatever their type
        raise _library_error(name, f"cannot decode segment {index}", exc) from None
    return decoded, shape


def read_rows(fd: int, name: str, segment: str, offset: int, count: int, start: int,
              nbytes: int) -> bytes:
    """``nbytes`` of rows from ``start`` into an uncompressed segment (strip or tile)
    that holds ``count`` bytes at ``offset`` of file ``fd``; :class:`InputError` naming
    file ``name`` and ``segment`` if the segment is shorter or the file ends first."""
    if start + nbytes > count:
        raise InputError(f"{name}: corrupt: {segment} holds {count:,} bytes, fewer than its rows need")
    data = os.pread(fd, nbytes, offset + start)
    if len(data) < nbytes:
        raise InputError(f"{name}: truncated: {segment} ends past the end of the file")
    return data


def _colormap_to_8_bits(colours: np.ndarray) -> np.ndarray:
    """``(n, 3)`` 16-bit colour-map entries as 8-bit colours.

    The 16-bit rule, ``(v + 128) // 257``, except where a writer plainly stored 8-bit
    colours: all values under 256 (taken as they are), or all multiples of 256 (the
    8-bit value shifted up, as Pillow writes them: taken back by ``v >> 8``).
    """
    if colours.max() < 256:
        return colours.astype(np.uint8)
    if not np.any(colours & 0xFF):
        return (colours >> 8).astype(np.uint8)
    return ((colours.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _plain_samples(page: tifffile.TiffPage) -> bool:
    """Uncompressed whole-byte samples: rows can be read from the file as they lie."""
    return (
        page.compression == 1
        and page.predictor == 1
        and page.fillorder == 1
        and page.bitspersample in (8, 16)
        and page.dtype is not None
        and page.dtype.itemsize * 8 == page.bitspersample
    )


def _segment_shape(page: tifffile.TiffPage) -> tuple[int, int]:
    """Height and width of one segment: a tile, or a strip of whole rows."""
    if page.is_tiled:
        return page.tilelength, page.tilewidth
    return min(page.rowsperstrip or page.imagelength, page.imagelength), page.imagewidth


def conversion_of(page: tifffile.TiffPage, name: str) -> Conversion:
    """The :class:`Conversion` for a page's samples, or :class:`InputError` if none."""
    photometric = int(page.photometric)
    bits = page.bitspersample
    if page.sampleformat != 1 or bits not in (1, 2, 4, 8, 16) or page.dtype is None:
        kind = {2: "signed integer", 3: "floating-point"}.get(int(page.sampleformat), "")
        raise unsupported(name, f"{bits}-bit {kind} samples".replace("  ", " "))
    spp = page.samplesperpixel
    extras = tuple(int(e) for e in page.extrasamples)
    invert = False
    signed_ab = False
    palette = None
    if photometric in (0, 1):  # MinIsWhite, MinIsBlack
        colour, invert = "grey", photometric == 0
    elif photometric == 2:
        colour = "rgb"
    elif photometric == 3:
        colour = "palette"
        colormap = page.colormap
        if colormap is None:
            raise InputError(f"{name}: a palette image without a colour map")
        palette = palette_table(_colormap_to_8_bits(np.asarray(colormap).T), bits)
    elif photometric == 5 and int(page.tags.valueof(332, 1)) == 1:  # Separated, InkSet CMYK
        colour = "cmyk"
    elif photometric == 6:
        if page.compression in _JPEG:
            colour = "rgb"  # the JPEG decoder returns RGB
        elif tuple(page.subsampling or (1, 1)) == (1, 1):
            colour = "ycbcr"
        else:
            raise unsupported(name, "chroma-subsampled YCbCr without JPEG compression")
    elif photometric in (8, 9):  # CIELab (signed a/b), ICCLab (offset a/b)
        colour, signed_ab = "lab", photometric == 8
        if bits != 8:
            raise unsupported(name, f"{bits}-bit CIELab")
    else:
        try:
            label = tifffile.PHOTOMETRIC(photometric).name
        except ValueError:
            label = str(photometric)
        raise unsupported(name, f"photometric interpretation {label}")
    conversion = Conversion(
        colour, bits=bits, invert=invert, palette=palette, signed_ab=signed_ab
    )
    if spp < conversion.samples:
        raise InputError(f"{name}: {spp} samples per pixel are too few for {colour}")
    if spp > conversion.samples and (not extras or extras[0] in _ALPHA or extras[0] == 0):
        # The first extra sample is taken as alpha (an unspecified one too: writers
        # often leave it unspecified); any further ones are dropped.
        conversion = Conversion(
            colour, bits=bits, alpha=True, invert=invert, palette=palette, signed_ab=signed_ab
        )
    return conversion


class TiffFormat:
    """TIFF and BigTIFF, tiled or striped, read region by region through tifffile."""

    name = "tiff"
    priority = 0

    def __init__(self, cache_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.cache_bytes = cache_bytes

    def probe(self, path: Path, options: BuildOptions) -> TiffSource | None:
        """Read page 0's header; ``None`` for a file without the TIFF magic.

        Runs in the coordinator.
        """
        f = open_input(path)
        if f is None:
            return None
        with f:
            if f.read(4) not in MAGICS:
                return None
        name = path.name
        try:
            with first_page(path) as first:
                return self._source(path, first.page, first.segment_count(), options)
        except InputError:
            raise
        except Exception as exc:  # any failure to parse the header is the input's fault
            raise _library_error(name, "not a readable TIFF", exc) from None

    def _source(
        self, path: Path, page: tifffile.TiffPage, segments: int, options: BuildOptions
    ) -> TiffSource:
        name = path.name
        if page.imagedepth > 1 or (page.is_tiled and page.tiledepth > 1):
            raise unsupported(name, "a volume (ImageDepth > 1)")
        width, height = page.imagewidth, page.imagelength
        check_size(name, width, height, options)
        conversion = conversion_of(page, name)
        try:
            tifffile.TIFF.DECOMPRESSORS[page.compression]
        except KeyError:
            try:
                label = tifffile.COMPRESSION(page.compression).name
            except ValueError:
                label = str(page.compression)
            raise InputError(
                f"{name}: compression {label} cannot be decoded here; "
                "re-save the file with LZW, Deflate, JPEG or no compression"
            ) from None
        seg_h, seg_w = _segment_shape(page)
        planes = page.samplesperpixel if page.planarconfig == 2 else 1
        needed = planes * math.ceil(height / seg_h) * math.ceil(width / seg_w)
        if segments < needed:
            raise InputError(f"{name}: corrupt: {segments} segments listed, {needed} needed")
        return TiffSource(path, width, height, conversion.bands, conversion, self.cache_bytes)


TIFF = TiffFormat()
