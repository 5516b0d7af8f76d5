"""The worker side of a warp: output regions sampled from the input through the cache.

:class:`WarpReader` is the :class:`~pyramidd.formats.RegionReader` of a warp
source. A region (normally one output tile, asked for in the engine's Z order) is
warped in *steps*: horizontal bands of output rows, like a scanline warper, each
step sending its output pixel centres through the reverse polynomial, fetching the
input pieces they fall in from the :class:`~.cache.PieceCache` and sampling them.

After every step the :class:`~.cache.ThrashDetector` is told how many input lines
the step read. When it trips, the reader *falls back*: the rest of the region, and
every later region, is warped in blocks small enough that the input pieces one
block needs fit in half the cache (a quarter after a second trip, and so on), taken
in Z order so neighbouring blocks reuse pieces. Pixels do not depend on the step
shape, so a fallback changes speed, never output.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np
import structlog

from ..morton import z_order
from .cache import PieceCache, PieceReader, ThrashDetector
from .extent import OutputGrid
from .model import PolynomialModel
from .sample import REACH, SAMPLERS, inside, needed_rect

log = structlog.get_logger("pyramidd.warp")

#: Pixels per step when the band height is automatic.
STEP_PIXELS = 65536

#: What a reader tells whoever listens when it falls back (a progress bar, ``/status``).
FALLBACK_NOTICE = "warp fallback: narrower blocks"


@dataclass(frozen=True)
class WarpSettings:
    """How a warp samples and reads; plain data, pickled to workers."""

    resampler: str = "near"
    #: "alpha": output has an alpha band, 0 outside the input. "background": no
    #: extra band, outside pixels take ``background``.
    fill: str = "alpha"
    background: tuple[int, int, int, int] = (255, 255, 255, 255)
    #: Budget of the piece cache in each render worker. Two workers' caches hold 64
    #: MiB, what ``gdalwarp -wm 64`` gets for its warp memory (its block cache aside);
    #: a 30° turn of 20000² then reads the input 1.16 times.
    cache_bytes: int = 32 << 20
    #: Output rows per step; 0 picks about STEP_PIXELS pixels per step.
    band_rows: int = 0
    thrash_window: int = 65536
    thrash_threshold: float = 0.2
    #: Piece shape ``(cols, rows)`` for inputs not read as TIFF tiles/strips.
    piece: tuple[int, int] | None = None


def out_bands(in_bands: int, fill: str) -> int:
    """Output band count: an alpha band is added unless the input has one or fill is background."""
    if fill == "background" or in_bands in (2, 4):
        return in_bands
    return in_bands + 1


def fill_value(bands: int, colour: tuple[int, int, int, int], fill: str) -> np.ndarray:
    """The pixel written outside the input."""
    if fill == "alpha":
        return np.zeros(bands, np.uint8)
    r, g, b, a = colour
    grey = (299 * r + 587 * g + 114 * b + 500) // 1000
    return np.array({1: [grey], 2: [grey, a], 3: [r, g, b], 4: [r, g, b, a]}[bands], np.uint8)


@dataclass
class WarpCounters:
    """Counters of one reader, for metrics and progress."""

    pixels: int
    piece_reads: int
    line_reads: int
    hits: int
    evictions: int
    bytes_read: int
    bytes_decoded: int
    fallbacks: int
    fallback_level: int
    thrash_ratio: float

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (for JSON metrics)."""
        return asdict(self)


class AlphaPieces:
    """Pieces of an input without alpha, with an opaque alpha band added on read.

    The warp's output has an alpha band; carrying it in the input pieces lets the
    kernels sample whole output pixels (and near gather them as 32-bit words).
    """

    def __init__(self, pieces: PieceReader) -> None:
        self.inner = pieces
        self.width, self.height = pieces.width, pieces.height
        self.bands = pieces.bands + 1
        self.piece_rows, self.piece_cols = pieces.piece_rows, pieces.piece_cols

    @property
    def bytes_read(self) -> int:
        """Bytes the wrapped reader fetched."""
        return self.inner.bytes_read

    def read_piece(self, prow: int, pcol: int) -> np.ndarray:
        """The piece with a band of 255 appended."""
        piece = self.inner.read_piece(prow, pcol)
        out = np.empty(piece.shape[:2] + (self.bands,), np.uint8)
        # One flat copy per band: several times faster than a copy with an inner
        # dimension of 3.
        flat, src = out.reshape(-1, self.bands), piece.reshape(-1, self.bands - 1)
        for band in range(self.bands - 1):
            flat[:, band] = src[:, band]
        flat[:, -1] = 255
        return out

    def close(self) -> None:
        """Close the wrapped reader."""
        self.inner.close()


class WarpReader:
    """Warps output regions on demand; see the module docstring."""

    def __init__(
        self,
        model: PolynomialModel,
        grid: OutputGrid,
        pieces: PieceReader,
        settings: WarpSettings,
    ) -> None:
        self.model = model
        self.grid = grid
        self.settings = settings
        self.bands = out_bands(pieces.bands, settings.fill)
        if self.bands > pieces.bands:
            pieces = AlphaPieces(pieces)
        self.pieces = pieces
        self.cache = PieceCache(pieces, settings.cache_bytes)
        self.detector = ThrashDetector(
            settings.thrash_window,
            settings.thrash_threshold,
            min_reads=2 * self.cache.capacity_pieces * pieces.piece_rows,
        )
        self._sample = SAMPLERS[settings.resampler]
        self._fill = fill_value(self.bands, settings.background, settings.fill)
        self.fallback_level = 0
        self.fallbacks = 0
        self.pixels = 0
        #: Called with a short message for people on each fallback, while the build
        #: runs; a render worker sets it to forward the news to the coordinator.
        self.notify: Callable[[str], None] | None = None

    # ------------------------------------------------------------------ public

    @property
    def counters(self) -> WarpCounters:
        """What this reader has read and done so far."""
        c = self.cache.counters
        return WarpCounters(
            pixels=self.pixels,
            piece_reads=c.reads,
            line_reads=c.line_reads,
            hits=c.hits,
            evictions=c.evictions,
            bytes_read=self.pieces.bytes_read,
            bytes_decoded=c.bytes_decoded,
            fallbacks=self.fallbacks,
            fallback_level=self.fallback_level,
            thrash_ratio=self.detector.last_ratio,
        )

    def read_region(self, x: int, y: int, w: int, h: int) -> np.ndarray:
        """Output pixels of ``[x, x+w) x [y, y+h)`` as ``(h, w, bands)`` uint8."""
        out = np.empty((h, w, self.bands), np.uint8)
        band = self.settings.band_rows or max(1, STEP_PIXELS // max(1, w))
        row = 0
        while row < h:
            if self.fallback_level:
                self._blocks(out, x, y, 0, row, w, h - row)
                break
            rows = min(band, h - row)
            if self._step(out, x, y, 0, row, w, rows):
                self._trip()
            row += rows
        return out

    def close(self) -> None:
        """Drop the cache and close the input."""
        self.cache.clear()
        self.pieces.close()

    # ------------------------------------------------------------------ steps

    def _trip(self) -> None:
        self.fallback_level += 1
        self.fallbacks += 1
        c = self.cache.counters
        log.warning(
            "warp.thrash",
            ratio=round(self.detector.last_ratio, 4),
            threshold=self.settings.thrash_threshold,
            level=self.fallback_level,
            cache_pieces=self.cache.capacity_pieces,
            line_reads=c.line_reads,
            note="input lines re-read too often; warping in smaller blocks",
        )
        if self.notify is not None:
            self.notify(FALLBACK_NOTICE)

    def _pieces_for(self, x: int, y: int, w: int, h: int) -> int:
        """Input pieces a ``w`` x ``h`` output block centred in the region needs.

        Counted over the bounding box of the block's transformed outline, not clipped
        to the input, so a block in an empty corner of the output is judged by the
        size it would have inside.
        """
        t = np.linspace(0.0, 1.0, 9)
        ox = np.concatenate([t * w, np.full_like(t, w), t * w, np.zeros_like(t)]) + x
        oy = np.concatenate([np.zeros_like(t), t * h, np.full_like(t, h), t * h]) + y
        g = self.grid
        sx, sy = self.model.to_source(g.min_x + ox * g.res_x, g.max_y - oy * g.res_y)
        before, after = REACH[self.settings.resampler]
        x0 = int(np.floor(sx.min())) - before
        x1 = int(np.floor(sx.max())) + after + 1
        y0 = int(np.floor(sy.min())) - before
        y1 = int(np.floor(sy.max())) + after + 1
        return self.cache.pieces_in(x0, y0, x1, y1)

    def block_size(self, x: int, y: int, w: int, h: int) -> tuple[int, int]:
        """The largest block whose input pieces fit the fallback budget.

        Widths and heights are tried from the region's down by halving, so a 90°
        rotation gets thin vertical strips (each needs few input lines however tall)
        and an oblique one gets squares. The budget is half the cache after the first
        trip, a quarter after the second, and so on.
        """
        budget = max(1, self.cache.capacity_pieces >> self.fallback_level)

        def halvings(n: int) -> list[int]:
            out = [n]
            while out[-1] > 1:
                out.append((out[-1] + 1) // 2)
            return out

        best, best_area = (1, 1), 0
        for bw in halvings(w):
            for bh in halvings(h):
                if bw * bh <= best_area:
                    continue
                if self._pieces_for(x + (w - bw) // 2, y + (h - bh) // 2, bw, bh) <= budget:
                    best, best_area = (bw, bh), bw * bh
        return best

    def _blocks(self, out: np.ndarray, x: int, y: int, ox: int, oy: int, w: int, h: int) -> None:
        bw, bh = self.block_size(x + ox, y + oy, w, h)
        cells = [(i, j) for j in range(-(-h // bh)) for i in range(-(-w // bw))]
        for i, j in z_order(cells):
            bx, by = ox + i * bw, oy + j * bh
            if self._step(out, x, y, bx, by, min(bw, ox + w - bx), min(bh, oy + h - by)):
                self._trip()

    def _extremes(self, sx: np.ndarray, sy: np.ndarray) -> tuple[float, float, float, float]:
        """Smallest and largest input x and y of a step's positions."""
        if self.model.order == 1:
            # An affine map sends the block's corners to the extremes; reading four
            # values instead of reducing the arrays keeps interior tiles cheap.
            cx = sx[[0, 0, -1, -1], [0, -1, 0, -1]]
            cy = sy[[0, 0, -1, -1], [0, -1, 0, -1]]
            return float(cx.min()), float(cy.min()), float(cx.max()), float(cy.max())
        return float(sx.min()), float(sy.min()), float(sx.max()), float(sy.max())

    def _step(self, out: np.ndarray, x: int, y: int, ox: int, oy: int, w: int, h: int) -> bool:
        """Warp ``out[oy:oy+h, ox:ox+w]`` (region origin ``x, y``); True if thrash tripped."""
        g = self.grid
        sx, sy = self.model.to_source(g.xs(x + ox, w)[None, :], g.ys(y + oy, h)[:, None])
        W, H = self.pieces.width, self.pieces.height
        sub = out[oy : oy + h, ox : ox + w]
        x_lo, y_lo, x_hi, y_hi = self._extremes(sx, sy)
        # Margins of 1e-9 px keep rounding of the extremes from deciding edge pixels;
        # blocks that touch the edge take the exact per-pixel path below.
        whole = x_lo >= 1e-9 and y_lo >= 1e-9 and x_hi + 1e-9 < W and y_hi + 1e-9 < H
        mask = None
        if whole:
            n = sx.size
            vx, vy = sx.ravel(), sy.ravel()
            before_px, after_px = REACH[self.settings.resampler]
            rect = (
                max(0, int(x_lo) - before_px - 1),
                max(0, int(y_lo) - before_px - 1),
                min(W, int(x_hi) + after_px + 2),
                min(H, int(y_hi) + after_px + 2),
            )
        else:
            mask = inside(sx, sy, W, H)
            n = int(np.count_nonzero(mask))
            if n == 0:
                sub[...] = self._fill
                return False
            vx, vy = sx[mask], sy[mask]
            found = needed_rect(vx, vy, self.settings.resampler, W, H)
            assert found is not None
            rect = found
        before = self.cache.counters.line_reads
        window = self.cache.window(*rect)
        vals = self._sample(window, rect[0], rect[1], vx, vy, W, H)
        if mask is None:
            sub[...] = vals.reshape(h, w, self.bands)
        else:
            sub[...] = self._fill
            sub[mask] = vals
        self.pixels += n
        return self.detector.add(n, self.cache.counters.line_reads - before)
