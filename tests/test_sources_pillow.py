"""The Pillow source: decoded once into shared memory, read by every worker."""

from __future__ import annotations

import os
import pickle
import struct
import subprocess
import warnings
import zlib
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
from PIL import Image

from pyramidd import shm
from pyramidd.errors import ImageTooLarge, InputError
from pyramidd.options import BuildOptions
from pyramidd.sources.pillow import PILLOW, PillowSource
from pyramidd.sources.raster import RasterSource

RNG = np.random.default_rng(5)
H, W = 37, 53
PIXELS = RNG.integers(0, 256, (H, W, 4), dtype=np.uint8)


def rects(width: int, height: int) -> list[tuple[int, int, int, int]]:
    """Awkward rectangles: whole image, corners, single pixels, edges, odd middles."""
    return [
        (0, 0, width, height),
        (0, 0, 1, 1),
        (width - 1, height - 1, 1, 1),
        (width - 1, 0, 1, height),
        (0, height - 1, width, 1),
        (width // 3, height // 4, width // 2, height // 2),
    ]


def pillow_truth(path: Path, mode: str) -> np.ndarray:
    """What Pillow itself makes of the file in ``mode``, as (h, w, bands)."""
    with Image.open(path) as im:
        want = np.asarray(im.convert(mode))
    return want if want.ndim == 3 else want[:, :, None]


def sixteen_bit_truth(samples: np.ndarray) -> np.ndarray:
    out = np.rint(samples.astype(np.float64) / 257.0).astype(np.uint8)
    return out if out.ndim == 3 else out[:, :, None]


def make(tmp_path: Path, case: str) -> tuple[Path, np.ndarray]:
    """Write one test image; return its path and the expected 8-bit pixels."""
    rgb = Image.fromarray(PIXELS[:, :, :3])
    rgba = Image.fromarray(PIXELS)
    if case == "png-L":
        path = tmp_path / "a.png"
        rgb.convert("L").save(path)
        return path, pillow_truth(path, "L")
    if case == "png-LA":
        path = tmp_path / "a.png"
        rgba.convert("LA").save(path)
        return path, pillow_truth(path, "LA")
    if case == "png-RGB":
        path = tmp_path / "a.png"
        rgb.save(path)
        return path, PIXELS[:, :, :3]
    if case == "png-RGBA":
        path = tmp_path / "a.png"
        rgba.save(path)
        return path, PIXELS
    if case == "png-1":
        path = tmp_path / "a.png"
        rgb.convert("1").save(path)
        return path, pillow_truth(path, "L")
    if case == "png-P":
        path = tmp_path / "a.png"
        rgb.convert("P").save(path)
        return path, pillow_truth(path, "RGB")
    if case == "png-P-transparent":
        path = tmp_path / "a.png"
        rgb.convert("P").save(path, transparency=3)
        return path, pillow_truth(path, "RGBA")
    if case == "png-I16":
        samples = RNG.integers(0, 65536, (H, W)).astype(np.uint16)
        path = tmp_path / "a.png"
        path.write_bytes(imagecodecs.png_encode(samples))
        return path, sixteen_bit_truth(samples)
    if case in ("png-RGB48", "png-RGBA64", "png-LA32"):
        bands = {"png-RGB48": 3, "png-RGBA64": 4, "png-LA32": 2}[case]
        samples = RNG.integers(0, 65536, (H, W, bands)).astype(np.uint16)
        path = tmp_path / "a.png"
        path.write_bytes(imagecodecs.png_encode(samples))
        return path, sixteen_bit_truth(samples)
    if case == "jpeg-RGB":
        path = tmp_path / "a.jpg"
        rgb.save(path, quality=90)
        return path, pillow_truth(path, "RGB")
    if case == "jpeg-L":
        path = tmp_path / "a.jpg"
        rgb.convert("L").save(path)
        return path, pillow_truth(path, "L")
    if case == "jpeg-CMYK":
        path = tmp_path / "a.jpg"
        rgb.convert("CMYK").save(path)
        return path, pillow_truth(path, "RGB")
    if case == "gif-P":
        path = tmp_path / "a.gif"
        rgb.convert("P").save(path, transparency=0)
        return path, pillow_truth(path, "RGBA")
    if case == "bmp-RGB":
        path = tmp_path / "a.bmp"
        rgb.save(path)
        return path, PIXELS[:, :, :3]
    if case == "bmp-1":
        path = tmp_path / "a.bmp"
        rgb.convert("1").save(path)
        return path, pillow_truth(path, "L")
    if case == "webp-RGB":
        path = tmp_path / "a.webp"
        rgb.save(path, lossless=True)
        return path, PIXELS[:, :, :3]
    if case == "webp-RGBA":
        path = tmp_path / "a.webp"
        rgba.save(path, lossless=True, exact=True)
        return path, PIXELS
    if case in ("png-L-key", "png-RGB-key"):
        # tRNS colour key: Pillow's own RGBA/LA conversion makes that colour transparent
        mode = case.split("-")[1]
        image = Image.fromarray(PIXELS[:, :, :3] // 64 * 64).convert(mode)
        path = tmp_path / "a.png"
        image.save(path, transparency=image.getpixel((0, 0)))
        return path, pillow_truth(path, mode[0] + "A" if mode == "L" else "RGBA")
    if case in ("ppm-RGB", "tga-RGB", "tga-RGBA"):
        path = tmp_path / f"a.{case[:3]}"
        (rgba if case.endswith("A") else rgb).save(path)
        return path, PIXELS if case.endswith("A") else PIXELS[:, :, :3]
    if case in ("ico-RGBA", "icns-RGBA", "jp2-RGB", "jp2-RGBA", "jp2-L"):
        # Loaders that do not decode into memory they are handed (see _DIRECT_FORMATS)
        kind, mode = case.split("-")
        size = 256 if kind in ("ico", "icns") else W
        image = Image.fromarray(RNG.integers(0, 256, (size, size, 4), np.uint8)).convert(mode)
        path = tmp_path / f"a.{kind}"
        image.save(path, **({"sizes": [(size, size)]} if kind == "ico" else {}))
        return path, pillow_truth(path, mode)
    raise AssertionError(case)


CASES = [
    "png-L", "png-LA", "png-RGB", "png-RGBA", "png-1", "png-P", "png-P-transparent",
    "png-I16", "png-RGB48", "png-RGBA64", "png-LA32",
    "jpeg-RGB", "jpeg-L", "jpeg-CMYK", "gif-P", "bmp-RGB", "bmp-1", "webp-RGB", "webp-RGBA",
    "png-L-key", "png-RGB-key", "ppm-RGB", "tga-RGB", "tga-RGBA", "ico-RGBA", "icns-RGBA", "jp2-RGB", "jp2-RGBA", "jp2-L",
]


def check(reader, want: np.ndarray) -> None:
    height, width, bands = want.shape
    for x, y, w, h in rects(width, height):
        got = reader.read_region(x, y, w, h)
        assert got.dtype == np.uint8 and got.shape == (h, w, bands)
        assert np.array_equal(got, want[y : y + h, x : x + w]), (x, y, w, h)


@pytest.mark.parametrize("case", CASES)
def test_regions_equal_truth_in_process(tmp_path, case):
    path, want = make(tmp_path, case)
    source = PILLOW.probe(path, BuildOptions())
    assert isinstance(source, PillowSource)
    assert (source.height, source.width, source.bands) == want.shape
    reader = source.open()
    check(reader, want)
    reader.close()


@pytest.mark.parametrize("case", CASES)
def test_regions_equal_truth_through_shared_memory(tmp_path, case):
    path, want = make(tmp_path, case)
    source = PILLOW.probe(path, BuildOptions())
    try:
        raster = source.prepare()
        assert isinstance(raster, RasterSource)
        assert raster.segment == source.segment
        # The slack of decoding RGB at four bytes a pixel is given back.
        assert os.stat(shm.SHM_DIR / source.segment).st_size == raster.nbytes
        reader = raster.open()
        check(reader, want)
        reader.close()
    finally:
        source.release()
    assert not (shm.SHM_DIR / source.segment).exists()


def _prepare(source: PillowSource) -> RasterSource:
    return source.prepare()


def _read(raster: RasterSource) -> list[np.ndarray]:
    reader = raster.open()
    try:
        return [reader.read_region(*r).copy() for r in rects(raster.width, raster.height)]
    finally:
        reader.close()


def test_shared_memory_lifecycle_across_processes(tmp_path):
    """Probe here, prepare in one child, read in another, release here."""
    path, want = make(tmp_path, "png-RGB")
    source = PILLOW.probe(path, BuildOptions())
    assert source.segment.startswith(f"{shm.PREFIX}{os.getpid()}_")
    assert source.owner_pid == os.getpid()
    source = pickle.loads(pickle.dumps(source))
    spawn = get_context("spawn")
    try:
        with ProcessPoolExecutor(1, mp_context=spawn) as preparer:
            raster = preparer.submit(_prepare, source).result(timeout=60)
        # The preparing process is gone; the segment is not.
        assert (shm.SHM_DIR / source.segment).exists()
        with ProcessPoolExecutor(1, mp_context=spawn) as reader:
            regions = reader.submit(_read, raster).result(timeout=60)
        for (x, y, w, h), got in zip(rects(W, H), regions):
            assert np.array_equal(got, want[y : y + h, x : x + w])
        assert (shm.SHM_DIR / source.segment).exists()
    finally:
        source.release()
    assert not (shm.SHM_DIR / source.segment).exists()
    assert not list(shm.SHM_DIR.glob(f"{shm.PREFIX}{os.getpid()}_*"))


def test_release_without_prepare_is_fine(tmp_path):
    path, _ = make(tmp_path, "png-RGB")
    source = PILLOW.probe(path, BuildOptions())
    source.release()
    source.release()


def test_opening_a_released_raster_says_what_happened(tmp_path):
    path, _ = make(tmp_path, "png-L")
    source = PILLOW.probe(path, BuildOptions())
    raster = source.prepare()
    source.release()
    with pytest.raises(InputError, match="a.png: its decoded pixels are gone"):
        raster.open()


def _png_claiming(path: Path, width: int, height: int) -> Path:
    """A real small PNG whose header claims ``width x height`` (CRC fixed up)."""
    Image.new("L", (4, 4)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = 8 + 8  # signature, then length and type of the IHDR chunk
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr - 4 : ihdr + 13]))
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", crc)
    path.write_bytes(bytes(data))
    return path


def test_pixel_limit_message(tmp_path):
    path = _png_claiming(tmp_path / "bomb.png", 100_000, 100_000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning either
        with pytest.raises(ImageTooLarge) as info:
            PILLOW.probe(path, BuildOptions())
    text = str(info.value)
    assert text.startswith("bomb.png: 100000x100000 is 10,000,000,000 pixels")
    assert f"{1 << 32:,}" in text and "--max-pixels 10000000000" in text
    assert "\n" not in text


def test_pillows_own_limit_does_not_interfere(tmp_path, monkeypatch):
    # Over twice Pillow's default limit, where it would raise DecompressionBombError.
    path = _png_claiming(tmp_path / "big.png", 14_000, 14_000)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 89_478_485)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        source = PILLOW.probe(path, BuildOptions())
    assert (source.width, source.height) == (14_000, 14_000)
    with pytest.raises(ImageTooLarge, match="--max-pixels"):
        PILLOW.probe(path, BuildOptions(max_pixels=14_000 * 14_000 - 1))


def claim_more_rows(path: Path, rows: int) -> None:
    """Make a PNG's header claim ``rows`` more rows than its complete data holds."""
    data = bytearray(path.read_bytes())
    height = struct.unpack_from(">I", data, 20)[0]
    struct.pack_into(">I", data, 20, height + rows)
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("case", ["png-RGB", "png-L", "png-RGBA", "png-P", "png-LA", "png-1",
                                  "png-I16", "png-RGB48", "interlaced", "interlaced-odd"])
@pytest.mark.parametrize("missing", [1, 30])
def test_a_png_whose_data_ends_before_its_last_row_is_truncated(tmp_path, case, missing):
    # The zlib stream is whole, but holds fewer rows than the header says: Pillow stops
    # there without a word, and the rows it never reached came out black.
    if case.startswith("interlaced"):
        path = tmp_path / "a.png"
        Image.fromarray(PIXELS[: H - (case == "interlaced-odd"), :, :3]).save(tmp_path / "p.png")
        subprocess.run(["vips", "copy", tmp_path / "p.png", f"{path}[interlace]"], check=True)
    else:
        path, _ = make(tmp_path, case)
    claim_more_rows(path, missing)
    source = PILLOW.probe(path, BuildOptions())
    for decode in (lambda: source.open(), lambda: source.prepare().open()):
        with pytest.raises(InputError, match=r"a.png: truncated") as info:
            decode()
        assert "\n" not in str(info.value)
    assert not (shm.SHM_DIR / source.segment).exists()
    source.release()


@pytest.mark.parametrize("case", ["png-RGB", "jpeg-RGB", "png-P", "gif-P", "png-RGB48"])
def test_truncated_file_fails_in_prepare_and_leaves_no_segment(tmp_path, case):
    path, _ = make(tmp_path, case)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    source = PILLOW.probe(path, BuildOptions())
    assert source is not None  # the header is intact
    with pytest.raises(InputError) as info:
        source.prepare()
    text = str(info.value)
    assert text.startswith(path.name + ": ") and "\n" not in text
    assert "truncated" in text or "corrupt" in text
    assert not (shm.SHM_DIR / source.segment).exists()
    source.release()


def test_corrupt_header_of_a_known_format(tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\x0dIHDR" + b"\xff" * 30)
    with pytest.raises(InputError, match=r"a.png: looks like a PNG file but cannot be read") as info:
        PILLOW.probe(path, BuildOptions())
    assert "\n" not in str(info.value)


def test_empty_file(tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(b"")
    with pytest.raises(InputError, match="a.png: the file is empty"):
        PILLOW.probe(path, BuildOptions())


def test_not_an_image_is_not_mine(tmp_path):
    (tmp_path / "notes.txt").write_text("nodes and edges, not pixels\n")
    assert PILLOW.probe(tmp_path / "notes.txt", BuildOptions()) is None
    assert PILLOW.probe(tmp_path, BuildOptions()) is None


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        PILLOW.probe(tmp_path / "nope.png", BuildOptions())


def test_unsupported_mode(tmp_path):
    path = tmp_path / "a.tif"
    Image.fromarray(np.zeros((4, 4), np.float32)).save(path)
    with pytest.raises(InputError, match=r"a.tif: Pillow mode 'F' \(TIFF\) is not supported"):
        PILLOW.probe(path, BuildOptions())


def test_source_is_plain_picklable_data(tmp_path):
    path, _ = make(tmp_path, "png-RGBA")
    source = PILLOW.probe(path, BuildOptions())
    again = pickle.loads(pickle.dumps(source))
    assert again == source


@pytest.mark.parametrize("case", ["png-L", "png-RGB", "png-RGBA", "jpeg-RGB", "jpeg-L", "bmp-RGB",
                                  "webp-RGB", "webp-RGBA", "ppm-RGB", "tga-RGB", "tga-RGBA"])
def test_l_rgb_rgba_decode_straight_into_the_segment(tmp_path, case, monkeypatch):
    """No second full copy: Pillow's decoder writes into the shared buffer itself."""

    def no_copy(*args, **kwargs):
        raise AssertionError("decoded into Pillow's memory and copied")

    monkeypatch.setattr(PillowSource, "_copy_strips", no_copy)
    monkeypatch.setattr(PillowSource, "_decode_converted", no_copy)
    path, want = make(tmp_path, case)
    source = PILLOW.probe(path, BuildOptions())
    try:
        reader = source.prepare().open()
        check(reader, want)
        reader.close()
    finally:
        source.release()


def test_prepare_replaces_a_segment_left_by_a_dead_attempt(tmp_path):
    path, want = make(tmp_path, "png-RGB")
    source = PILLOW.probe(path, BuildOptions())
    stale = shm.create(10, name=source.segment)
    stale.close()
    try:
        reader = source.prepare().open()
        check(reader, want)
        reader.close()
    finally:
        source.release()


def test_not_enough_shared_memory_is_a_clear_error(tmp_path, monkeypatch):
    path, _ = make(tmp_path, "png-RGB")
    source = PILLOW.probe(path, BuildOptions())

    class Full:
        f_bavail, f_blocks, f_frsize = 1, 1, 4096

    monkeypatch.setattr(os, "statvfs", lambda directory: Full())
    with pytest.raises(ImageTooLarge, match=r"a.png: decoding it needs .* MiB of shared memory"):
        source.prepare()
    assert not (shm.SHM_DIR / source.segment).exists()
