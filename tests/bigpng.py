"""Large PNG files written without holding the image, and quickly.

A few distinct bands of rows are deflated once each (as raw deflate blocks ended by a
full flush, so no block refers back past its band) and then repeated down the image;
the zlib checksum is computed over the rows themselves. Every row is stored with the
PNG "sub" filter, so each row stands alone.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from pyramidd.sinks.png import chunk

#: Distinct bands; the image repeats with a period of ``DISTINCT * band_rows`` rows.
DISTINCT = 8


def smooth_rows(width: int, y0: int, y1: int, bands: int) -> np.ndarray:
    """Rows ``y0..y1`` of a smooth, textured test image."""
    x = np.arange(width, dtype=np.int64)
    y = np.arange(y0, y1, dtype=np.int64)[:, None]
    planes = [(x * (3 + b) // 7 + y * (5 - b) // 9 + (x * y) // 4099) & 0xFF for b in range(bands)]
    return np.stack(planes, axis=2).astype(np.uint8)


def expected_rows(width: int, y0: int, y1: int, bands: int, band_rows: int) -> np.ndarray:
    """What rows ``y0..y1`` of a :func:`write_png` image hold."""
    period = DISTINCT * band_rows
    ys = [y % period for y in range(y0, y1)]
    return smooth_rows(width, 0, period, bands)[ys] if ys else np.empty((0, width, bands), np.uint8)


def _filtered(rows: np.ndarray) -> bytes:
    bands = rows.shape[2]
    flat = rows.reshape(rows.shape[0], -1)
    lines = np.empty((flat.shape[0], flat.shape[1] + 1), np.uint8)
    lines[:, 0] = 1  # "sub"
    lines[:, 1 : 1 + bands] = flat[:, :bands]
    lines[:, 1 + bands :] = flat[:, bands:] - flat[:, :-bands]  # wraps mod 256, as PNG's does
    return lines.tobytes()


def _deflated(raw: bytes) -> bytes:
    d = zlib.compressobj(1, zlib.DEFLATED, -15)
    return d.compress(raw) + d.flush(zlib.Z_FULL_FLUSH)


def write_png(path: Path, width: int, height: int, bands: int = 3, band_rows: int = 256) -> None:
    """An 8-bit grey, grey+alpha, RGB or RGBA PNG whose rows are :func:`expected_rows`."""
    colour = {1: 0, 2: 4, 3: 2, 4: 6}[bands]
    pieces: dict[tuple[int, int], tuple[bytes, bytes]] = {}  # (band, rows) -> raw, deflated
    adler = 1
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)))
        f.write(chunk(b"IDAT", b"\x78\x01"))  # zlib header: deflate, fastest
        for y0 in range(0, height, band_rows):
            n = min(band_rows, height - y0)
            k = (y0 // band_rows) % DISTINCT
            if (k, n) not in pieces:
                raw = _filtered(smooth_rows(width, k * band_rows, k * band_rows + n, bands))
                pieces[(k, n)] = raw, _deflated(raw)
            raw, packed = pieces[(k, n)]
            adler = zlib.adler32(raw, adler)
            f.write(chunk(b"IDAT", packed))
        end = zlib.compressobj(1, zlib.DEFLATED, -15).flush()  # an empty final block
        f.write(chunk(b"IDAT", end + struct.pack(">I", adler)))
        f.write(chunk(b"IEND", b""))
