"""Row streams decode PNG and JPEG by rows to exactly what decoding them whole gives."""

from __future__ import annotations

import struct
import zlib

import imagecodecs
import numpy as np
import pytest
from PIL import Image

from pyramidd.errors import InputError
from pyramidd.options import BuildOptions
from pyramidd.sources.pillow import PILLOW

RNG = np.random.default_rng(11)
NOISE = RNG.integers(0, 256, (97, 131, 3), dtype=np.uint8)
SMOOTH = np.cumsum(RNG.integers(0, 3, (97, 131, 3)), axis=1).astype(np.uint8)


def _write(path, kind):
    if kind == "P":
        Image.fromarray(SMOOTH).quantize(200).save(path)
    elif kind == "PA":
        Image.fromarray(SMOOTH).quantize(200).save(path, transparency=bytes(range(200)))
    elif kind in ("16Lkey", "16RGBkey"):
        samples = (RNG.integers(0, 4, (97, 131, 3 if kind == "16RGBkey" else 1)) * 20000
                   ).astype(np.uint16)
        path.write_bytes(with_colour_key(imagecodecs.png_encode(samples.squeeze()),
                                         samples[0, 0].tolist()))
    elif kind.startswith("16"):
        shape = {"16L": (97, 131), "16LA": (97, 131, 2), "16RGB": (97, 131, 3)}[kind]
        path.write_bytes(imagecodecs.png_encode(RNG.integers(0, 65536, shape, dtype=np.uint16)))
    elif kind in ("Lkey", "RGBkey"):
        image = Image.fromarray((SMOOTH // 40 * 40).astype(np.uint8)).convert(kind[:-3])
        image.save(path, transparency=image.getpixel((0, 0)))
    elif kind.startswith("jpeg"):
        img = Image.fromarray(SMOOTH)
        (img.convert("L") if kind == "jpeg-grey" else img).save(
            path, quality=85, progressive=kind == "jpeg-progressive")
    else:
        base = NOISE if kind == "RGB" else SMOOTH
        Image.fromarray(base).convert(kind).save(path)


def with_colour_key(png: bytes, key: list[int]) -> bytes:
    """``png`` with a tRNS chunk making the 16-bit grey or RGB colour ``key`` transparent."""
    at = png.index(b"IDAT") - 4
    data = struct.pack(f">{len(key)}H", *key)
    trns = (struct.pack(">I", len(data)) + b"tRNS" + data
            + struct.pack(">I", zlib.crc32(b"tRNS" + data) & 0xFFFFFFFF))
    return png[:at] + trns + png[at:]


def _streamed(source, steps):
    stream = source.stream()
    out = np.empty((source.height, source.width, source.bands), np.uint8)
    y, i = 0, 0
    while y < source.height:
        n = min(steps[i % len(steps)], source.height - y)
        stream.read(out[y : y + n])
        y, i = y + n, i + 1
    stream.close()
    return out


@pytest.mark.parametrize("kind", ["L", "LA", "RGB", "RGBA", "P", "PA", "16L", "16LA", "16RGB",
                                  "Lkey", "RGBkey", "16Lkey", "16RGBkey",
                                  "jpeg", "jpeg-grey", "jpeg-progressive"])
def test_rows_equal_the_whole_decode(tmp_path, kind):
    path = tmp_path / ("in.jpg" if kind.startswith("jpeg") else "in.png")
    _write(path, kind)
    source = PILLOW.probe(path, BuildOptions())
    assert source.stream_kind == ("jpeg" if kind.startswith("jpeg") else "png")
    whole = source.open().read_region(0, 0, source.width, source.height)
    if kind.endswith("key"):  # the colour key is an alpha band: 0 where it matches
        assert whole.shape[2] in (2, 4) and whole[0, 0, -1] == 0
        assert 0 < (whole[:, :, -1] == 0).mean() < 0.5 and set(np.unique(whole[:, :, -1])) == {0, 255}
    for steps in [(1,), (7, 1, 50), (97,)]:
        np.testing.assert_array_equal(_streamed(source, steps), whole, err_msg=str(steps))


def _png(width, height, raw, colour=2):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw)
            + chunk(b"IEND", b""))


def test_bad_filter_type_and_corrupt_deflate_are_input_errors(tmp_path):
    rows = b"".join(b"\x09" + bytes(30) for _ in range(10))  # filter type 9 does not exist
    path = tmp_path / "filter.png"
    path.write_bytes(_png(10, 10, zlib.compress(rows)))
    source = PILLOW.probe(path, BuildOptions())
    with pytest.raises(InputError, match="corrupt"):
        _streamed(source, (10,))
    path = tmp_path / "deflate.png"
    path.write_bytes(_png(10, 10, b"\x78\x01" + bytes(range(40))))
    with pytest.raises(InputError, match="corrupt|truncated"):
        _streamed(PILLOW.probe(path, BuildOptions()), (10,))


@pytest.mark.parametrize("steps", [(4,), (10,), (1,)])
def test_rows_missing_at_the_end_are_an_input_error(tmp_path, steps):
    # Streamed and decoded whole alike, and the same words: a whole zlib stream that
    # holds 6 of the 10 rows its header promises.
    rows = b"".join(b"\x00" + bytes(30) for _ in range(6))
    path = tmp_path / "short.png"
    path.write_bytes(_png(10, 10, zlib.compress(rows)))
    source = PILLOW.probe(path, BuildOptions())
    words = "short.png: truncated PNG data: the image data ends after row 6 of 10"
    with pytest.raises(InputError, match=words):
        _streamed(source, steps)
    with pytest.raises(InputError, match=words):
        source.open()


def test_a_damaged_image_data_chunk_fails_its_crc_streamed_and_whole(tmp_path):
    # Pillow decodes the damaged bytes without a word; libpng (and the 16-bit decoder)
    # refuse them. Both ways of decoding here refuse them now.
    rows = b"".join(b"\x00" + bytes(range(y, y + 30)) for y in range(10))
    data = bytearray(_png(10, 10, zlib.compress(rows, 0)))  # stored: any byte decodes
    at = data.index(b"IDAT") + 4 + 20
    data[at] ^= 0xFF
    path = tmp_path / "crc.png"
    path.write_bytes(bytes(data))
    source = PILLOW.probe(path, BuildOptions())
    words = "crc.png: corrupt PNG data .an image data chunk at byte 33 fails its CRC check"
    with pytest.raises(InputError, match=words):
        _streamed(source, (3,))
    with pytest.raises(InputError, match=words):
        source.open()


def test_formats_without_a_row_stream(tmp_path):
    Image.fromarray(SMOOTH).convert("CMYK").save(tmp_path / "cmyk.jpg")
    Image.fromarray(SMOOTH).convert("1").save(tmp_path / "bits.png")
    Image.fromarray(SMOOTH).save(tmp_path / "plain.bmp")
    for name in ("cmyk.jpg", "bits.png", "plain.bmp"):
        assert PILLOW.probe(tmp_path / name, BuildOptions()).stream_kind is None, name


def test_a_jpeg_whose_relative_name_starts_with_a_dash(tmp_path, monkeypatch):
    # djpeg would read "-grayscale.jpg" as a switch: it is given the absolute path.
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "-grayscale.jpg"
    _write(path, "jpeg")
    source = PILLOW.probe(path.relative_to(tmp_path), BuildOptions())
    assert source.stream_kind == "jpeg"
    whole = source.open().read_region(0, 0, source.width, source.height)
    np.testing.assert_array_equal(_streamed(source, (13,)), whole)
