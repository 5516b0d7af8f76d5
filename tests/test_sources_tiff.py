"""The TIFF source: region reads that decode only the segments they touch."""

from __future__ import annotations

import os
import struct
import pickle
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from pyramidd.errors import ImageTooLarge, InputError
from pyramidd.options import BuildOptions
from pyramidd.sources.tiff import TIFF, SegmentCache, TiffFormat, TiffReader

RNG = np.random.default_rng(11)
H, W = 45, 67


def rects(width: int, height: int) -> list[tuple[int, int, int, int]]:
    """Awkward rectangles: whole image, corners, single pixels, edges, odd middles."""
    return [
        (0, 0, width, height),
        (0, 0, 1, 1),
        (width - 1, height - 1, 1, 1),
        (width - 1, 0, 1, height),
        (0, height - 1, width, 1),
        (width // 3, height // 4, max(1, width // 2), max(1, height // 2)),
        (1, 1, max(1, width - 2), max(1, height - 2)),
    ]


def truth(samples: np.ndarray) -> np.ndarray:
    """Expected (h, w, bands) for grey/grey+alpha/RGB/RGBA samples, independently."""
    if samples.ndim == 2:
        samples = samples[:, :, None]
    if samples.dtype == np.uint16:
        return np.rint(samples.astype(np.float64) / 257.0).astype(np.uint8)
    return samples


def write(path: Path, samples: np.ndarray, *, separate: bool = False, **kwargs) -> Path:
    """Write (h, w[, s]) samples as a TIFF: grey, grey+alpha, RGB or RGBA."""
    s = 1 if samples.ndim == 2 else samples.shape[2]
    photometric = "rgb" if s >= 3 else "minisblack"
    extra = {"extrasamples": ["unassalpha"]} if s in (2, 4) else {}
    if separate and s > 1:
        data = np.moveaxis(samples, 2, 0).copy()
        tifffile.imwrite(path, data, photometric=photometric, planarconfig="separate", **extra, **kwargs)
    else:
        if s > 1:
            kwargs["planarconfig"] = "contig"
        tifffile.imwrite(path, samples, photometric=photometric, **extra, **kwargs)
    return path


def samples_of(bands: int, dtype: type, height: int = H, width: int = W) -> np.ndarray:
    top = 65536 if dtype == np.uint16 else 256
    shape = (height, width) if bands == 1 else (height, width, bands)
    return RNG.integers(0, top, shape).astype(dtype)


def check_regions(path: Path, want: np.ndarray, options: BuildOptions | None = None) -> TiffReader:
    source = TIFF.probe(path, options or BuildOptions())
    assert source is not None
    assert (source.height, source.width, source.bands) == want.shape
    source = pickle.loads(pickle.dumps(source))  # sources cross to workers
    reader = source.open()
    for x, y, w, h in rects(source.width, source.height):
        got = reader.read_region(x, y, w, h)
        assert got.dtype == np.uint8 and got.shape == (h, w, source.bands)
        assert np.array_equal(got, want[y : y + h, x : x + w]), (x, y, w, h)
    return reader


LAYOUTS = {
    "tiled": {"tile": (16, 32)},
    "striped": {"rowsperstrip": 7},
    "one-strip": {"rowsperstrip": H},
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("separate", [False, True], ids=["contig", "separate"])
@pytest.mark.parametrize("bands", [1, 2, 3, 4])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16], ids=["8bit", "16bit"])
def test_layouts_bands_depths(tmp_path, layout, separate, bands, dtype):
    samples = samples_of(bands, dtype)
    path = write(tmp_path / "a.tif", samples, separate=separate, **LAYOUTS[layout])
    reader = check_regions(path, truth(samples))
    reader.close()


@pytest.mark.parametrize(
    "compression, layout",
    [(c, layout) for c in ("zlib", "lzw", "zstd", "packbits", "lzma") for layout in ("tiled", "striped")]
    + [("webp", "tiled")],  # WebP segments are tiles
)
def test_lossless_compressions(tmp_path, compression, layout):
    samples = samples_of(3, np.uint8)
    extra = {"predictor": True} if compression in ("zlib", "lzw") else {}
    if compression == "webp":
        extra = {"compressionargs": {"level": 100, "lossless": True}}
    path = write(tmp_path / "a.tif", samples, compression=compression, **LAYOUTS[layout], **extra)
    check_regions(path, truth(samples)).close()


@pytest.mark.parametrize("bands", [1, 3])
def test_jpeg_matches_a_whole_image_decode(tmp_path, bands):
    samples = samples_of(bands, np.uint8, 70, 90)
    path = write(tmp_path / "a.tif", samples, compression="jpeg", tile=(32, 48))
    want = truth(tifffile.imread(path))
    check_regions(path, want).close()


def test_bigtiff(tmp_path):
    samples = samples_of(4, np.uint8)
    path = write(tmp_path / "a.tif", samples, bigtiff=True, tile=(16, 16))
    check_regions(path, truth(samples)).close()


def test_multi_page_reads_page_0(tmp_path):
    full = samples_of(3, np.uint8)
    path = tmp_path / "pyramid.tif"
    with tifffile.TiffWriter(path) as tif:
        tif.write(full, photometric="rgb", tile=(16, 16), subifds=1)
        tif.write(full[::2, ::2], photometric="rgb", tile=(16, 16), subfiletype=1)
        tif.write(samples_of(3, np.uint8, 10, 10), photometric="rgb")
    check_regions(path, full).close()


def test_bilevel_min_is_white_matches_pillow(tmp_path):
    bits = RNG.integers(0, 2, (H, W)).astype(bool)
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, bits, photometric="miniswhite", rowsperstrip=5)
    want = np.asarray(Image.open(path).convert("L"))[:, :, None]
    assert set(np.unique(want)) <= {0, 255}
    check_regions(path, want).close()


def test_min_is_white_8_bit_is_inverted(tmp_path):
    samples = samples_of(1, np.uint8)
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, samples, photometric="miniswhite", tile=(16, 16))
    check_regions(path, (255 - samples)[:, :, None]).close()


@pytest.mark.parametrize("bits", [8, 4])
def test_palette_matches_pillow(tmp_path, bits):
    colours = RNG.integers(0, 65536, (3, 256)).astype(np.uint16)
    index = RNG.integers(0, 1 << bits, (H, W)).astype(np.uint8)
    path = tmp_path / "a.tif"
    # tifffile packs the indices to ``bits`` when asked to.
    tifffile.imwrite(path, index, photometric="palette", colormap=colours, bitspersample=bits, rowsperstrip=8)
    rgb = np.rint(colours.T[index].astype(np.float64) / 257.0).astype(np.uint8)
    check_regions(path, rgb).close()
    assert np.abs(np.asarray(Image.open(path).convert("RGB")).astype(int) - rgb).max() <= 1


@pytest.mark.parametrize("bits", [2, 4])
def test_low_bit_grey_matches_pillow(tmp_path, bits):
    grey = RNG.integers(0, 1 << bits, (H, W)).astype(np.uint8)
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, grey, photometric="minisblack", bitspersample=bits, tile=(16, 16))
    want = np.asarray(Image.open(path).convert("L"))[:, :, None]
    check_regions(path, want).close()


def test_cmyk_matches_pillow(tmp_path):
    cmyk = samples_of(4, np.uint8)
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, cmyk, photometric="separated", tile=(16, 16))
    want = np.asarray(Image.fromarray(cmyk, "CMYK").convert("RGB"))
    check_regions(path, want).close()


def test_sparse_tiles_read_as_zeros(tmp_path):
    samples = samples_of(1, np.uint8, 64, 64)
    samples[:32, :32] = 0
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, samples, tile=(32, 32), photometric="minisblack")
    reader = TIFF.probe(path, BuildOptions()).open()
    # An empty segment (byte count 0) reads as zeros.
    reader._counts = (0,) + tuple(reader._counts[1:])
    assert np.array_equal(reader.read_region(0, 0, 64, 64)[:, :, 0], samples)
    reader.close()


@pytest.mark.parametrize(
    "dtype, message",
    [
        (np.float32, "32-bit floating-point samples is not supported"),
        (np.int16, "16-bit signed integer samples is not supported"),
        (np.uint32, "32-bit samples is not supported"),
    ],
)
def test_unsupported_sample_types(tmp_path, dtype, message):
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, np.zeros((4, 4), dtype))
    with pytest.raises(InputError, match=message) as info:
        TIFF.probe(path, BuildOptions())
    assert str(info.value).startswith("a.tif: ") and "supported" in str(info.value)


def test_not_a_tiff_is_not_mine(tmp_path):
    (tmp_path / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    (tmp_path / "empty.tif").write_bytes(b"")
    assert TIFF.probe(tmp_path / "a.png", BuildOptions()) is None
    assert TIFF.probe(tmp_path / "empty.tif", BuildOptions()) is None
    assert TIFF.probe(tmp_path, BuildOptions()) is None


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        TIFF.probe(tmp_path / "nope.tif", BuildOptions())


def test_corrupt_header(tmp_path):
    path = tmp_path / "a.tif"
    path.write_bytes(b"II*\x00" + b"\xff" * 60)
    with pytest.raises(InputError, match="a.tif: not a readable TIFF") as info:
        TIFF.probe(path, BuildOptions())
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        ("directory past the end", "the file ends at byte 4,464, before the end of its first directory"),
        ("cut in the directory", "before the end of its first directory's 15 entries (at byte 8)"),
        ("cut in the tile table", "before the end of its tile offsets (at byte 258)"),
        ("cut in the strip table", "before the end of its strip offsets"),
        ("directory at byte 0", "contains no pages"),
    ],
)
def test_a_broken_header_is_one_clear_error_and_nothing_logged(tmp_path, damage, words):
    # tifffile's own report of these is a warning per header read (a build reads the
    # header three times) and then an empty table, or IndexError's bare "0".
    import logging

    path = tmp_path / "a.tif"
    layout = {"rowsperstrip": 1} if "strip" in damage else {"tile": (16, 16)}
    tifffile.imwrite(path, np.zeros((64, 64), np.uint8), **layout)
    data = bytearray(path.read_bytes())
    if damage == "directory past the end":
        struct.pack_into("<I", data, 4, len(data) - 1)
    elif damage == "cut in the directory":
        data = data[:40]
    elif damage.startswith("cut in the"):
        data = data[:270]
    else:
        struct.pack_into("<I", data, 4, 0)
    path.write_bytes(bytes(data))
    logged: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = logged.append  # type: ignore[method-assign]
    logging.getLogger("tifffile").addHandler(handler)
    try:
        with pytest.raises(InputError) as info:
            TIFF.probe(path, BuildOptions())
    finally:
        logging.getLogger("tifffile").removeHandler(handler)
    assert str(info.value).startswith("a.tif: not a readable TIFF: ") and words in str(info.value)
    assert [r.getMessage() for r in logged] == []


def test_truncated_data_fails_on_read_with_a_clear_error(tmp_path):
    samples = samples_of(3, np.uint8, 64, 64)
    path = write(tmp_path / "a.tif", samples, tile=(16, 16))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    source = TIFF.probe(path, BuildOptions())
    reader = source.open()
    with pytest.raises(InputError, match="a.tif: truncated"):
        reader.read_region(0, 0, 64, 64)
    reader.close()


def test_corrupt_compressed_segment(tmp_path):
    samples = samples_of(3, np.uint8, 32, 32)
    path = write(tmp_path / "a.tif", samples, tile=(16, 16), compression="zlib")
    source = TIFF.probe(path, BuildOptions())
    with tifffile.TiffFile(path) as tif:
        offset = tif.pages.first.dataoffsets[0]
    data = bytearray(path.read_bytes())
    data[offset : offset + 8] = b"\xde\xad\xbe\xef" * 2
    path.write_bytes(bytes(data))
    reader = source.open()
    with pytest.raises(InputError, match="a.tif: cannot decode segment 0") as info:
        reader.read_region(0, 0, 4, 4)
    assert "\n" not in str(info.value)
    reader.close()


def test_pixel_limit(tmp_path):
    path = write(tmp_path / "a.tif", samples_of(1, np.uint8), tile=(16, 16))
    with pytest.raises(ImageTooLarge) as info:
        TIFF.probe(path, BuildOptions(max_pixels=100))
    text = str(info.value)
    assert "67x45" in text and "3,015" in text and "100" in text and "--max-pixels" in text


def test_segment_cache_is_bounded_and_keeps_the_newest():
    cache = SegmentCache(max_bytes=250)
    for i in range(5):
        cache.put(i, np.zeros(100, np.uint8))
        assert cache.nbytes <= 250
    assert len(cache) == 2 and cache.get(0) is None and cache.get(4) is not None
    cache.put("big", np.zeros(1000, np.uint8))
    assert len(cache) == 1 and cache.get("big") is not None


def test_cache_keeps_the_segments_of_a_region_whatever_its_budget(tmp_path):
    samples = samples_of(3, np.uint8, 64, 200)
    path = write(tmp_path / "a.tif", samples, rowsperstrip=32, compression="zlib")
    source = TiffFormat(cache_bytes=1).probe(path, BuildOptions())
    reader = source.open()
    for x in range(0, 200, 20):  # regions straddling both strips, left to right
        assert np.array_equal(reader.read_region(x, 20, 20, 20), samples[20:40, x : x + 20])
    assert reader.decode_count == 2
    reader.close()


def test_reads_decode_only_intersecting_segments(tmp_path):
    samples = samples_of(3, np.uint8, 128, 128)
    path = write(tmp_path / "a.tif", samples, tile=(32, 32))
    reader = TIFF.probe(path, BuildOptions()).open()
    reader.read_region(40, 40, 10, 10)
    assert reader.decode_count == 1
    reader.read_region(30, 30, 4, 4)  # four tiles, one of them cached
    assert reader.decode_count == 4
    reader.close()


def test_engine_read_pattern_decodes_each_tile_about_once(tmp_path):
    """16384x16384 RGB, 256-pixel tiles, read as the engine reads: subtree by subtree,
    each in Z order, 254-pixel tiles with their overlap halos, default cache."""
    from pyramidd import planner, subtree
    from pyramidd.grid import Grid
    from pyramidd.resamplers import Box

    n, tile = 16384, 256
    path = tmp_path / "big.tif"
    # Every tile is the same Deflate stream of zeros, compressed once and written as is.
    blob = zlib.compress(bytes(tile * tile * 3), 1)
    tifffile.imwrite(
        path,
        data=(blob for _ in range((n // tile) ** 2)),
        shape=(n, n, 3),
        dtype=np.uint8,
        tile=(tile, tile),
        photometric="rgb",
        compression="zlib",
    )
    source = TIFF.probe(path, BuildOptions())
    reader = source.open()
    grid = Grid(n, n, 254, 1)
    for root in planner.plan(grid, 2).subtrees:
        subtree.build_subtree(grid, root, reader, Box(), lambda key, region: None)
    assert reader._cache.nbytes <= reader.cache_bytes
    ratio = reader.decode_count / (n // tile) ** 2
    assert ratio <= 1.15, ratio
    reader.close()


@pytest.mark.parametrize("byteorder", ["<", ">"])
@pytest.mark.parametrize("separate", [False, True], ids=["contig", "separate"])
def test_uncompressed_strips_are_read_a_few_rows_at_a_time(tmp_path, byteorder, separate):
    samples = samples_of(3, np.uint16, 60, 41)
    path = write(tmp_path / "a.tif", samples, separate=separate, rowsperstrip=7, byteorder=byteorder)
    source = TIFF.probe(path, BuildOptions())
    # Pieces of 3 rows straddle the 7-row strips.
    reader = TiffReader(source.path, source.conversion, raw_strip_bytes=3 * 41 * 3 * 2)
    assert reader.seg_h == 3 if not separate else reader.seg_h == 7
    want = truth(samples)
    for x, y, w, h in rects(41, 60):
        assert np.array_equal(reader.read_region(x, y, w, h), want[y : y + h, x : x + w])
    reader.close()


def test_one_huge_uncompressed_strip_is_not_read_whole(tmp_path):
    samples = samples_of(1, np.uint8, 500, 300)
    path = write(tmp_path / "a.tif", samples, rowsperstrip=500)
    source = TIFF.probe(path, BuildOptions())
    reader = TiffReader(source.path, source.conversion, raw_strip_bytes=10 * 300)
    got = reader.read_region(100, 250, 50, 5)
    assert np.array_equal(got[:, :, 0], samples[250:255, 100:150])
    assert reader.decode_count == 1 and reader._cache.nbytes == 10 * 300
    reader.close()


def test_uncompressed_strip_shorter_than_its_rows_is_corrupt(tmp_path):
    path = write(tmp_path / "a.tif", samples_of(1, np.uint8, 20, 20), rowsperstrip=20)
    source = TIFF.probe(path, BuildOptions())
    reader = source.open()
    reader._counts = (100,)
    with pytest.raises(InputError, match="a.tif: corrupt: strip 0 holds 100 bytes"):
        reader.read_region(0, 10, 5, 5)
    reader.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.data(),
    height=st.integers(1, 70),
    width=st.integers(1, 70),
    bands=st.integers(1, 4),
    sixteen=st.booleans(),
    separate=st.booleans(),
    tiled=st.booleans(),
)
def test_random_layouts_and_regions(tmp_path, data, height, width, bands, sixteen, separate, tiled):
    dtype = np.uint16 if sixteen else np.uint8
    samples = samples_of(bands, dtype, height, width)
    if tiled:
        layout = {"tile": (data.draw(st.sampled_from([16, 32, 48])), data.draw(st.sampled_from([16, 32, 64])))}
    else:
        layout = {"rowsperstrip": data.draw(st.integers(1, height + 3))}
    path = write(tmp_path / "h.tif", samples, separate=separate, **layout)
    want = truth(samples)
    cache = data.draw(st.sampled_from([1, 4096, 1 << 20]))
    source = TiffFormat(cache_bytes=cache).probe(path, BuildOptions())
    reader = TiffReader(path, source.conversion, cache, raw_strip_bytes=data.draw(st.integers(1, 20000)))
    try:
        for _ in range(4):
            x = data.draw(st.integers(0, width - 1))
            y = data.draw(st.integers(0, height - 1))
            w = data.draw(st.integers(1, width - x))
            h = data.draw(st.integers(1, height - y))
            assert np.array_equal(reader.read_region(x, y, w, h), want[y : y + h, x : x + w])
    finally:
        reader.close()


def test_segment_table_leaves_the_page_and_reads_still_work(tmp_path: Path) -> None:
    # tifffile's tuples of Python ints are what grew a worker from 16k² to 64k²; the
    # reader keeps int64 arrays and the page gives its tuples up.
    img = np.random.default_rng(3).integers(0, 256, (300, 500, 3), np.uint8)
    path = tmp_path / "t.tif"
    tifffile.imwrite(path, img, tile=(64, 64), compression="zlib")
    with tifffile.TiffFile(path) as tif:
        want = list(tif.pages.first.dataoffsets), list(tif.pages.first.databytecounts)
    source = TIFF.probe(path, BuildOptions())
    reader = TiffReader(source.path, source.conversion)
    assert reader._page.dataoffsets == () and reader._page.databytecounts == ()
    assert reader._offsets.dtype == np.int64
    assert (reader._offsets.tolist(), reader._counts.tolist()) == want
    assert np.array_equal(reader.read_region(37, 11, 400, 250), img[11:261, 37:437])
    reader.close()


@pytest.mark.parametrize("layout", ["tiles", "strips"])
def test_header_reads_never_hold_the_segment_table(tmp_path: Path, layout: str) -> None:
    # A build's coordinator reads a TIFF's header three times (this source, the warp
    # format's GeoTIFF check, the OpenSlide plugin's). tifffile would read the segment
    # table (here 65,536 tiles, or strips of one row as GDAL writes a wide image) into
    # tuples of Python ints, 4.7 MiB a read, whose freed arenas stay pinned; none of
    # the three needs more than its length.
    import gc
    import logging
    import tracemalloc

    from pyramidd.warp.geotiff import read_geotiff_gcps
    from pyramidd_openslide.source import may_be_slide

    path = tmp_path / "many.tif"
    if layout == "tiles":
        tifffile.imwrite(path, np.zeros((4096, 4096), np.uint8), tile=(16, 16),
                         compression="zlib")
    else:
        tifffile.imwrite(path, np.zeros((65536, 16), np.uint8), rowsperstrip=1)
    reads = {
        "tiff source": lambda: TIFF.probe(path, BuildOptions()),
        "GeoTIFF check": lambda: read_geotiff_gcps(path),
        "OpenSlide check": lambda: may_be_slide(path),
    }
    logged: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = logged.append  # type: ignore[method-assign]
    logging.getLogger("tifffile").addHandler(handler)
    try:
        for name, read in reads.items():
            read()  # first use fills tifffile's own caches
            gc.collect()
            gc.disable()
            tracemalloc.start()
            try:
                read()
                left, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
                gc.enable()
            assert peak < 256 << 10, (name, peak)
            assert left < 64 << 10, (name, left)
    finally:
        logging.getLogger("tifffile").removeHandler(handler)
    # tifffile was shown a one-segment table; it must not say so
    assert [r.getMessage() for r in logged] == []


@pytest.mark.parametrize("bigtiff", [False, True])
@pytest.mark.parametrize("byteorder", ["<", ">"])
@pytest.mark.parametrize(
    ("size", "segment", "compression"),
    [
        ((16, 16), (16, 16), None),  # one tile: the table lies in its entry
        ((16, 32), (16, 16), None),  # two: in a BigTIFF entry, not a classic one
        ((48, 16), (16, 16), None),  # three short byte counts
        ((300, 500), (64, 64), "zlib"),
        ((600, 300), (256, 256), None),  # long byte counts
        ((16, 16), 16, None),  # one strip
        ((48, 16), 16, None),  # three strips, short byte counts
        ((300, 500), 7, "zlib"),  # the last strip short
        ((600, 300), 100, None),  # long byte counts
        ((300, 500), 1, "jpeg"),  # tifffile rounds the strip up to JPEG's 16 rows
    ],
)
def test_segment_table_as_tifffile_reads_it(
    tmp_path: Path, bigtiff: bool, byteorder: str, size: tuple[int, int],
    segment: tuple[int, int] | int, compression: str | None,
) -> None:
    from pyramidd.sources.tiffpage import first_page

    img = np.random.default_rng(5).integers(0, 256, (*size, 3), np.uint8)
    layout = {"tile": segment} if isinstance(segment, tuple) else {"rowsperstrip": segment}
    path = write(tmp_path / "t.tif", img, compression=compression, bigtiff=bigtiff,
                 byteorder=byteorder, **layout)
    tags = (324, 325) if "tile" in layout else (273, 279)
    with tifffile.TiffFile(path) as tif:
        page = tif.pages.first
        want = list(page.dataoffsets), list(page.databytecounts)
        in_entry = any(page.tags[c].valueoffset == page.tags[c].offset + (12 if bigtiff else 8)
                       for c in tags)
        rows = page.rowsperstrip
        whole = page.asarray()
    with first_page(path) as first:
        offsets, counts = first.segment_table()
        assert (offsets.dtype, counts.dtype) == (np.int64, np.int64)
        assert (offsets.tolist(), counts.tolist()) == want
        assert first.segment_count() == len(want[0])
        assert first.page.dataoffsets == () and first.page.databytecounts == ()
        # tables outside their entries were read here: tifffile saw one segment
        assert first.page.tags[tags[0]].count == (len(want[0]) if in_entry else 1)
        assert first.page.rowsperstrip == rows
    source = TIFF.probe(path, BuildOptions())
    reader = source.open()
    try:
        assert np.array_equal(reader.read_region(0, 0, size[1], size[0]), whole)
    finally:
        reader.close()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), bigtiff=st.booleans(), striped=st.booleans())
def test_damaged_directories_fail_as_input_errors(
    tmp_path: Path, data, bigtiff: bool, striped: bool
) -> None:
    # Bytes of the header and the first directory (its entries, and the segment tables
    # they point at) overwritten at random: the file either reads, or every step fails
    # with an InputError naming it; nothing else escapes, nothing reads past the end.
    path = tmp_path / "d.tif"
    layout = {"rowsperstrip": 5} if striped else {"tile": (16, 16)}
    write(path, samples_of(3, np.uint8, 48, 40), compression="zlib", bigtiff=bigtiff, **layout)
    raw = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tif:
        page = tif.pages.first
        counts = page.tags[279 if striped else 325]
        end = max(page.offset + 8 + 20 * len(page.tags), counts.valueoffset + 8 * counts.count)
    for _ in range(data.draw(st.integers(1, 6))):
        at = data.draw(st.integers(0, min(end, len(raw)) - 1))
        raw[at] = data.draw(st.integers(0, 255))
    path.write_bytes(bytes(raw))
    try:
        source = TIFF.probe(path, BuildOptions())
        if source is None:
            return
        reader = source.open()
        try:
            reader.read_region(0, 0, source.width, source.height)
        finally:
            reader.close()
    except InputError as exc:
        assert str(exc).startswith("d.tif: ") and "\n" not in str(exc)


def test_a_damaged_byte_count_reads_no_more_than_the_file(tmp_path: Path, monkeypatch) -> None:
    samples = samples_of(3, np.uint8, 32, 32)
    path = write(tmp_path / "a.tif", samples, tile=(16, 16), compression="zlib", bigtiff=True)
    reader = TIFF.probe(path, BuildOptions()).open()
    reader._counts = np.array([1 << 62, *reader._counts[1:]], np.int64)
    reads = []
    real_pread = os.pread
    monkeypatch.setattr(os, "pread", lambda fd, n, at: reads.append(n) or real_pread(fd, n, at))
    try:
        with pytest.raises(InputError, match="a.tif: truncated: segment 0 ends at byte"):
            reader.read_region(0, 0, 4, 4)
    finally:
        reader.close()
    assert reads and max(reads) <= path.stat().st_size


@pytest.mark.parametrize("bigtiff", [False, True])
def test_sparse_first_tile_in_a_table_read_here(tmp_path: Path, bigtiff: bool) -> None:
    # GDAL writes an empty tile as offset 0, byte count 0 (SPARSE_OK): the one-tile
    # table tifffile sees then holds zeros, and the tile reads as zeros.
    img = np.random.default_rng(6).integers(0, 256, (64, 96, 3), np.uint8)
    path = write(tmp_path / "s.tif", img, tile=(32, 32), compression="zlib", bigtiff=bigtiff)
    data = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tif:
        for code in (324, 325):
            tag = tif.pages.first.tags[code]
            size = {3: 2, 4: 4, 16: 8}[tag.dtype]
            data[tag.valueoffset : tag.valueoffset + size] = bytes(size)
    path.write_bytes(bytes(data))
    source = TIFF.probe(path, BuildOptions())
    reader = source.open()
    try:
        assert reader._page.tags[324].count == 1
        want = img.copy()
        want[:32, :32] = 0
        assert np.array_equal(reader.read_region(0, 0, 96, 64), want)
    finally:
        reader.close()


def test_patched_view_reads_the_file_with_its_patches(tmp_path: Path) -> None:
    from pyramidd.sources.tiffpage import _PatchedFile

    path = tmp_path / "f.bin"
    path.write_bytes(bytes(range(100)))
    fd = os.open(path, os.O_RDONLY)
    try:
        with _PatchedFile(path, fd, 100, {10: b"ABCD", 98: b"YZ"}) as view:
            assert view.read(12) == bytes(range(10)) + b"AB"
            assert view.read(4) == b"CD" + bytes([14, 15])
            assert view.seek(-3, os.SEEK_END) == 97 and view.read() == bytes([97]) + b"YZ"
            assert view.read(5) == b""
            view.seek(11)
            into = np.zeros(6, np.uint8)
            assert view.readinto(into) == 6
            assert into.tobytes() == b"BCD" + bytes([14, 15, 16])
            with pytest.raises(OSError):
                view.seek(-1)
    finally:
        os.close(fd)
