"""Warping output regions through the cache: thrash detection, fallback, piece readers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import structlog
import tifffile

from pyramidd.errors import InputError

from pyramidd.morton import z_order
from pyramidd.warp.extent import output_grid
from pyramidd.warp.gcps import GCP
from pyramidd.warp.inputs import ArrayPieces, RegionPieces, TiffPieces
from pyramidd.warp.model import fit
from pyramidd.warp.reader import FALLBACK_NOTICE, WarpReader, WarpSettings

W = H = 512
IMG = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)


def rotation(deg: float):  # type: ignore[no-untyped-def]
    """Model and output grid of a rotation by ``deg`` degrees."""
    th = np.radians(deg)
    pts = [(0, 0), (W, 0), (0, H), (W, H), (W / 2, H / 3)]
    gcps = [GCP(p, ln, p * np.cos(th) - ln * np.sin(th), -(p * np.sin(th) + ln * np.cos(th))) for p, ln in pts]
    model = fit(gcps, 1).model
    return model, output_grid(model, W, H)


class ArrayRegionReader:
    """A RegionReader over a numpy array, as a source plugin would give."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array
        self.regions = 0

    def read_region(self, x: int, y: int, w: int, h: int) -> np.ndarray:
        self.regions += 1
        return self.array[y : y + h, x : x + w]

    def close(self) -> None:
        pass


def warp_scanlines(deg: float, piece: tuple[int, int], cache_pieces: int, threshold: float = 0.2):  # type: ignore[no-untyped-def]
    """The whole output in one region, one output row per step, as a scanline warper."""
    model, grid = rotation(deg)
    cols, rows = piece
    settings = WarpSettings(
        cache_bytes=cache_pieces * cols * rows * 4,  # RGB pieces are held as RGBA
        band_rows=1,
        thrash_window=8192,
        thrash_threshold=threshold,
    )
    reader = WarpReader(model, grid, RegionPieces(ArrayRegionReader(IMG), W, H, 3, rows, cols), settings)
    out = reader.read_region(0, 0, grid.width, grid.height)
    return out, reader.counters


def test_oblique_rotation_with_a_small_cache_trips_and_fallback_cuts_rereads() -> None:
    with structlog.testing.capture_logs() as logs:
        out, c = warp_scanlines(30, (64, 8), cache_pieces=40)
    _, never = warp_scanlines(30, (64, 8), cache_pieces=40, threshold=1e9)
    assert never.fallbacks == 0
    assert c.fallbacks >= 1 and c.fallback_level >= 1
    assert [e["event"] for e in logs].count("warp.thrash") == c.fallbacks
    # Without the fallback every output row re-reads its lines: ~8x the input.
    assert never.bytes_read > 6 * IMG.nbytes
    # With it, about one read per input line, detection latency included.
    assert c.bytes_read < 2.5 * IMG.nbytes
    assert c.bytes_read * 3 < never.bytes_read


def test_ninety_degrees_over_plain_scanlines_falls_back_to_vertical_strips() -> None:
    # The classic worst case: each output row is an input column, so a scanline
    # warper reads every input line once per output row.
    out, c = warp_scanlines(90, (W, 1), cache_pieces=100)
    _, never = warp_scanlines(90, (W, 1), cache_pieces=100, threshold=1e9)
    assert never.line_reads > 100 * H
    assert c.fallbacks == 1
    assert c.line_reads < 2 * H


def test_each_fallback_is_told_to_the_listener_as_it_happens() -> None:
    model, grid = rotation(90)
    settings = WarpSettings(cache_bytes=100 * W * 4, band_rows=1, thrash_window=8192)
    reader = WarpReader(model, grid, RegionPieces(ArrayRegionReader(IMG), W, H, 3, 1, W), settings)
    heard: list[tuple[str, int, int]] = []
    reader.notify = lambda message: heard.append(
        (message, reader.counters.fallbacks, reader.counters.pixels))
    reader.read_region(0, 0, grid.width, grid.height)
    assert [m for m, _, _ in heard] == [FALLBACK_NOTICE] * reader.fallbacks == [FALLBACK_NOTICE]
    # told at the trip, long before the region is done
    assert heard[0][1] == 1 and heard[0][2] < reader.counters.pixels / 4


def test_fallback_does_not_change_pixels() -> None:
    a, c = warp_scanlines(30, (64, 8), cache_pieces=40)
    b, never = warp_scanlines(30, (64, 8), cache_pieces=40, threshold=1e9)
    assert c.fallbacks and not never.fallbacks
    assert np.array_equal(a, b)


@pytest.mark.parametrize("deg", [0, 30, 90])
def test_healthy_runs_do_not_trip(deg: float) -> None:
    # Scanlines with a cache that holds what a row needs...
    _, c = warp_scanlines(deg, (64, 8), cache_pieces=400)
    assert c.fallbacks == 0
    assert c.thrash_ratio < 0.05
    # ... and tiles in Z order with a cache of a few tiles' input.
    model, grid = rotation(deg)
    settings = WarpSettings(cache_bytes=64 * 64 * 4 * 24, thrash_window=8192)
    reader = WarpReader(model, grid, ArrayPieces(IMG, 64, 64), settings)
    t = 64
    cells = [(i, j) for j in range(-(-grid.height // t)) for i in range(-(-grid.width // t))]
    for i, j in z_order(cells):
        reader.read_region(i * t, j * t, min(t, grid.width - i * t), min(t, grid.height - j * t))
    c = reader.counters
    assert c.fallbacks == 0
    assert c.bytes_read < 1.5 * IMG.nbytes


def test_region_reads_agree_with_one_whole_read_and_alpha_marks_the_input() -> None:
    model, grid = rotation(30)
    settings = WarpSettings(resampler="bilinear")
    whole = WarpReader(model, grid, ArrayPieces(IMG), settings).read_region(0, 0, grid.width, grid.height)
    reader = WarpReader(model, grid, ArrayPieces(IMG), settings)
    x, y, w, h = 100, 37, 130, 90
    assert np.array_equal(reader.read_region(x, y, w, h), whole[y : y + h, x : x + w])
    assert whole.shape == (grid.height, grid.width, 4)
    assert whole[0, 0].tolist() == [0, 0, 0, 0]  # a corner outside the rotated input
    assert whole[grid.height // 2, grid.width // 2, 3] == 255
    assert set(np.unique(whole[..., 3]).tolist()) == {0, 255}


def test_background_fill_keeps_the_band_count() -> None:
    model, grid = rotation(30)
    settings = WarpSettings(fill="background", background=(10, 20, 30, 255))
    out = WarpReader(model, grid, ArrayPieces(IMG), settings).read_region(0, 0, 20, 20)
    assert out.shape == (20, 20, 3)
    assert out[0, 0].tolist() == [10, 20, 30]


@pytest.mark.parametrize("compression, piece", [(None, (64, 128)), ("zlib", (128, 128))])
def test_tiled_tiff_is_read_piece_by_piece_and_counted(tmp_path: Path, compression, piece) -> None:
    # Uncompressed tiles are read in quarters of 64 rows, compressed ones whole.
    path = tmp_path / "in.tif"
    tifffile.imwrite(path, IMG, tile=(128, 128), compression=compression)
    pieces = TiffPieces(path)
    assert (pieces.piece_rows, pieces.piece_cols) == piece
    model, grid = rotation(30)
    settings = WarpSettings(resampler="cubic")
    got = WarpReader(model, grid, pieces, settings).read_region(0, 0, grid.width, grid.height)
    ref = WarpReader(model, grid, ArrayPieces(IMG), settings).read_region(0, 0, grid.width, grid.height)
    assert np.array_equal(got, ref)
    if compression is None:
        assert pieces.bytes_read == 16 * 128 * 128 * 3  # every tile once
    pieces.close()


def test_uncompressed_tile_pieces_at_the_edges_and_a_truncated_file(tmp_path: Path) -> None:
    img = IMG[:300, :200]  # partial tiles on the right and at the bottom
    path = tmp_path / "in.tif"
    tifffile.imwrite(path, img, tile=(128, 128))
    pieces = TiffPieces(path)
    assert np.array_equal(pieces.read_piece(4, 1), img[256:300, 128:200])
    assert np.array_equal(pieces.read_piece(3, 0), img[192:256, :128])
    pieces.close()
    with open(path, "r+b") as f:  # cut the last tile short
        f.truncate(path.stat().st_size - 40000)
    pieces = TiffPieces(path)
    with pytest.raises(InputError, match="truncated"):
        pieces.read_piece(4, 1)
    pieces.close()


def test_damaged_compressed_tiles_fail_as_input_errors(tmp_path: Path) -> None:
    path = tmp_path / "in.tif"
    tifffile.imwrite(path, (IMG[:300, :200] // 64) * 64, tile=(128, 128), compression="zlib")
    with tifffile.TiffFile(path) as tif:
        offsets, counts = tif.pages.first.dataoffsets, tif.pages.first.databytecounts
    data = bytearray(path.read_bytes())
    data[offsets[0] : offsets[0] + 8] = b"\xde\xad\xbe\xef" * 2
    path.write_bytes(bytes(data[: offsets[-1] + counts[-1] // 2]))  # the last one cut short
    pieces = TiffPieces(path)
    try:
        with pytest.raises(InputError, match="in.tif: cannot decode segment 0: ") as info:
            pieces.read_piece(0, 0)
        assert "\n" not in str(info.value)
        with pytest.raises(InputError, match="in.tif: truncated: segment 5 ends at byte"):
            pieces.read_piece(2, 1)
        assert pieces.bytes_read == 0
    finally:
        pieces.close()


def test_striped_and_compressed_tiff(tmp_path: Path) -> None:
    path = tmp_path / "in.tif"
    smooth = (IMG // 64) * 64  # compresses, unlike noise
    tifffile.imwrite(path, smooth, rowsperstrip=16, compression="zlib")
    pieces = TiffPieces(path)
    assert (pieces.piece_rows, pieces.piece_cols) == (16, W)
    assert np.array_equal(pieces.read_piece(31, 0), smooth[496:512])
    assert 0 < pieces.bytes_read < 16 * W * 3
    pieces.close()
