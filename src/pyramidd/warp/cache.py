"""The bounded cache of input pieces and the thrash detector.

The input is read in *pieces*: ``piece_rows`` scanlines by ``piece_cols`` columns
(a TIFF tile, a TIFF strip, or plain scanlines when ``piece_rows == 1`` and
``piece_cols`` is the image width). :class:`PieceCache` keeps the most recently used
pieces up to a byte budget and drops the least recently used one when a new piece
does not fit. The warp asks it only for pieces, so the memory a warp holds of its
input is bounded by that budget whatever the rotation.

A rotated warp over wide output runs can need more input lines at once than the
budget holds; then each run re-reads what the previous run dropped ("thrashing").
:class:`ThrashDetector` counts input-line reads per output pixel over a rolling
window of output pixels. Reading a piece of ``r`` rows counts ``r`` line reads
(whatever its width), so in scanline mode the figure is exactly the
line-reads-per-pixel of a classic scanline warper: about 0.02 or less when lines
are reused, 0.5 and more when each output pixel pulls lines in.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Protocol

import numpy as np


class PieceReader(Protocol):
    """Reads the input in fixed pieces. Lives in a render worker."""

    width: int
    height: int
    bands: int
    piece_rows: int
    piece_cols: int
    #: Bytes fetched from storage so far (compressed bytes for a compressed file).
    bytes_read: int

    def read_piece(self, prow: int, pcol: int) -> np.ndarray:
        """Pixels of piece ``(prow, pcol)`` as ``(rows, cols, bands)`` uint8, clipped to the image."""
        ...

    def close(self) -> None:
        """Release the file."""
        ...


@dataclass
class CacheCounters:
    """What the cache did so far; plain numbers for metrics and progress."""

    hits: int = 0
    #: Pieces read from the input (cache misses).
    reads: int = 0
    #: Input lines read: the rows of every piece read.
    line_reads: int = 0
    #: Pixels read from the input, as bytes (decoded).
    bytes_decoded: int = 0
    #: Pieces dropped to stay within the budget.
    evictions: int = 0


class PieceCache:
    """LRU of input pieces bounded by ``capacity`` bytes (always room for one piece)."""

    def __init__(self, reader: PieceReader, capacity: int) -> None:
        self.reader = reader
        self.capacity = int(capacity)
        self.counters = CacheCounters()
        self._pieces: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._bytes = 0
        self.piece_bytes = reader.piece_rows * reader.piece_cols * reader.bands

    @property
    def size_bytes(self) -> int:
        """Bytes of pieces held now."""
        return self._bytes

    @property
    def capacity_pieces(self) -> int:
        """How many full pieces fit in the budget (at least one)."""
        return max(1, self.capacity // max(1, self.piece_bytes))

    def get(self, prow: int, pcol: int) -> np.ndarray:
        """The piece at ``(prow, pcol)``, read on a miss."""
        key = (prow, pcol)
        piece = self._pieces.get(key)
        if piece is not None:
            self._pieces.move_to_end(key)
            self.counters.hits += 1
            return piece
        piece = self.reader.read_piece(prow, pcol)
        c = self.counters
        c.reads += 1
        c.line_reads += piece.shape[0]
        c.bytes_decoded += piece.nbytes
        while self._pieces and self._bytes + piece.nbytes > self.capacity:
            _, old = self._pieces.popitem(last=False)
            self._bytes -= old.nbytes
            c.evictions += 1
        self._pieces[key] = piece
        self._bytes += piece.nbytes
        return piece

    def pieces_in(self, x0: int, y0: int, x1: int, y1: int) -> int:
        """How many pieces cover the input rectangle ``[x0, x1) x [y0, y1)``."""
        if x1 <= x0 or y1 <= y0:
            return 0
        pr, pc = self.reader.piece_rows, self.reader.piece_cols
        return ((y1 - 1) // pr - y0 // pr + 1) * ((x1 - 1) // pc - x0 // pc + 1)

    def window(self, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        """Input pixels of ``[x0, x1) x [y0, y1)`` assembled from cached pieces.

        A view into the piece when the rectangle lies in one piece, else a copy.
        """
        pr, pc = self.reader.piece_rows, self.reader.piece_cols
        r0, r1 = y0 // pr, (y1 - 1) // pr
        c0, c1 = x0 // pc, (x1 - 1) // pc
        if r0 == r1 and c0 == c1:
            piece = self.get(r0, c0)
            return piece[y0 - r0 * pr : y1 - r0 * pr, x0 - c0 * pc : x1 - c0 * pc]
        out = np.empty((y1 - y0, x1 - x0, self.reader.bands), dtype=np.uint8)
        for r in range(r0, r1 + 1):
            py0 = r * pr
            ya, yb = max(y0, py0), min(y1, py0 + pr)
            for c in range(c0, c1 + 1):
                px0 = c * pc
                xa, xb = max(x0, px0), min(x1, px0 + pc)
                piece = self.get(r, c)
                out[ya - y0 : yb - y0, xa - x0 : xb - x0] = piece[ya - py0 : yb - py0, xa - px0 : xb - px0]
        return out

    def clear(self) -> None:
        """Drop every piece."""
        self._pieces.clear()
        self._bytes = 0


class ThrashDetector:
    """Input-line reads per output pixel over the last ``window`` output pixels.

    :meth:`add` is told after each step how many output pixels it made (pixels that
    fall inside the input; empty corners of a rotated output do not dilute the
    figure) and how many input lines it read. The ratio is judged once the window
    holds ``window`` pixels, or sooner once it holds ``min_reads`` line reads: a
    warp that has read twice what the cache holds in fewer pixels than the window
    is not warming up, it is re-reading. :meth:`add` returns True when the judged
    ratio exceeds ``threshold``; the window then starts afresh so the next verdict
    judges the new block shape.
    """

    def __init__(
        self, window: int = 65536, threshold: float = 0.2, min_reads: int | None = None
    ) -> None:
        self.window = int(window)
        self.threshold = float(threshold)
        self.min_reads = min_reads
        self._steps: deque[tuple[int, int]] = deque()
        self._pixels = 0
        self._reads = 0
        #: The last ratio judged, for progress reports.
        self.last_ratio = 0.0

    @property
    def ratio(self) -> float:
        """Line reads per output pixel over the current window (0 when empty)."""
        return self._reads / self._pixels if self._pixels else 0.0

    def add(self, pixels: int, line_reads: int) -> bool:
        """Record one step; True when the window is full and over the threshold."""
        if pixels <= 0 and line_reads <= 0:
            return False
        self._steps.append((pixels, line_reads))
        self._pixels += pixels
        self._reads += line_reads
        # Keep the newest steps that make up at least `window` pixels.
        while self._steps and self._pixels - self._steps[0][0] >= self.window:
            p, r = self._steps.popleft()
            self._pixels -= p
            self._reads -= r
        if self._pixels < self.window and (self.min_reads is None or self._reads < self.min_reads):
            return False
        self.last_ratio = self.ratio
        if self.last_ratio > self.threshold:
            self.reset()
            return True
        return False

    def reset(self) -> None:
        """Forget every step."""
        self._steps.clear()
        self._pixels = 0
        self._reads = 0
