"""Tile encoding: round trips per band count and format, flattening, padding, options."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

from pyramidd.errors import OptionError
from pyramidd.options import BuildOptions
from pyramidd.sinks.encode import TileEncoder, flatten, luminance
from pyramidd.testing import gradient

MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def decode(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def as_array(im: Image.Image) -> np.ndarray:
    a = np.asarray(im)
    return a[:, :, None] if a.ndim == 2 else a


def encoder(suffix: str, **kw) -> TileEncoder:
    extra = {k: kw.pop(k) for k in list(kw) if k in ("lossless", "png_compress_level")}
    alpha = kw.pop("alpha", False)
    return TileEncoder.from_options(BuildOptions(suffix=suffix, extra=extra, **kw), alpha=alpha)


@pytest.mark.parametrize("bands", [1, 2, 3, 4])
def test_png_keeps_bands_and_pixels(bands: int) -> None:
    pixels = gradient(37, 23, bands)
    im = decode(encoder("png").encode(pixels))
    assert im.format == "PNG" and im.mode == MODES[bands]
    assert np.array_equal(as_array(im), pixels)


@pytest.mark.parametrize("bands, mode", [(1, "LA"), (2, "LA"), (3, "RGBA"), (4, "RGBA")])
def test_png_with_alpha_adds_an_opaque_band(bands: int, mode: str) -> None:
    pixels = gradient(20, 10, bands)
    got = as_array(decode(encoder("png", alpha=True).encode(pixels)))
    assert got.shape[2] == len(mode)
    colour = bands - 1 if bands in (2, 4) else bands
    assert np.array_equal(got[..., :colour], pixels[..., :colour])
    expected_alpha = pixels[..., -1] if bands in (2, 4) else 255
    assert np.all(got[..., -1] == expected_alpha)


@pytest.mark.parametrize("bands, mode", [(1, "L"), (2, "L"), (3, "RGB"), (4, "RGB")])
def test_jpeg_round_trip_close(bands: int, mode: str) -> None:
    pixels = gradient(64, 48, bands)
    enc = encoder("jpg", quality=95)
    im = decode(enc.encode(pixels))
    assert im.format == "JPEG" and im.mode == mode
    expected = flatten(pixels, enc.background) if bands in (2, 4) else pixels
    diff = np.abs(as_array(im).astype(int) - expected.astype(int))
    assert diff.mean() < 4  # lossy, but the picture is the same


def test_flatten_composites_over_the_background() -> None:
    rgba = np.array([[[200, 100, 0, 255], [200, 100, 0, 0], [200, 100, 0, 128]]], np.uint8)
    out = flatten(rgba, (10, 20, 30, 255))
    assert out.tolist() == [[[200, 100, 0], [10, 20, 30], [105, 60, 15]]]
    la = np.array([[[0, 0], [200, 255]]], np.uint8)
    assert flatten(la, (255, 255, 255, 255)).tolist() == [[[255], [200]]]
    assert luminance((255, 255, 255)) == 255 and luminance((0, 0, 0)) == 0


def test_jpeg_alpha_flattens_onto_the_options_background() -> None:
    pixels = np.zeros((16, 16, 4), np.uint8)  # fully transparent
    enc = encoder("jpg", quality=95, background=(0, 0, 255, 255))
    got = as_array(decode(enc.encode(pixels)))
    assert np.abs(got.astype(int) - [0, 0, 255]).max() <= 3


@pytest.mark.parametrize("quality, sampling", [(75, 2), (89, 2), (90, 0), (100, 0)])
def test_jpeg_subsampling_follows_vips(quality: int, sampling: int) -> None:
    im = decode(encoder("jpg", quality=quality).encode(gradient(32, 32, 3)))
    assert JpegImagePlugin.get_sampling(im) == sampling


def test_jpeg_quality_changes_size() -> None:
    pixels = gradient(128, 128, 3)
    assert len(encoder("jpg", quality=30).encode(pixels)) < len(encoder("jpg", quality=95).encode(pixels))


@pytest.mark.parametrize("bands, mode", [(1, "RGB"), (2, "RGBA"), (3, "RGB"), (4, "RGBA")])
def test_webp_lossless_round_trip(bands: int, mode: str) -> None:
    pixels = gradient(30, 20, bands)
    im = decode(encoder("webp", lossless=True).encode(pixels))
    assert im.format == "WEBP" and im.mode == mode
    got = as_array(im)
    colour = bands - 1 if bands in (2, 4) else bands
    # A grey band is spread over R, G and B.
    assert np.array_equal(got[..., :3], np.broadcast_to(pixels[..., :colour], got[..., :3].shape))
    if bands in (2, 4):
        assert np.array_equal(got[..., 3], pixels[..., -1])


def test_webp_lossy_close_and_alpha_forced() -> None:
    pixels = gradient(64, 64, 3)
    enc = encoder("webp", quality=90, alpha=True)
    assert enc.prepare(pixels).shape == (64, 64, 4)
    im = decode(enc.encode(pixels))
    # libwebp leaves out an alpha plane that is opaque everywhere.
    assert im.mode in ("RGB", "RGBA")
    got = as_array(im.convert("RGBA"))
    assert np.abs(got[..., :3].astype(int) - pixels.astype(int)).mean() < 12  # 4:2:0 on a sharp checker
    assert np.all(got[..., 3] == 255)


@pytest.mark.parametrize("at_bottom", [False, True])
def test_padding_places_data_and_fills_transparent(at_bottom: bool) -> None:
    pixels = gradient(5, 3, 3)
    out = encoder("png", alpha=True).prepare(pixels, (8, 6), at_bottom=at_bottom)
    assert out.shape == (6, 8, 4)
    y0 = 3 if at_bottom else 0
    assert np.array_equal(out[y0 : y0 + 3, :5, :3], pixels)
    assert np.all(out[y0 : y0 + 3, :5, 3] == 255)
    mask = np.ones((6, 8), bool)
    mask[y0 : y0 + 3, :5] = False
    assert np.all(out[mask] == 0)  # transparent black


def test_padding_jpeg_uses_background() -> None:
    pixels = gradient(5, 3, 4)
    enc = encoder("jpg", background=(1, 2, 3, 255))
    out = enc.prepare(pixels, (8, 6))
    assert out.shape == (6, 8, 3)
    assert np.array_equal(out[:3, :5], flatten(pixels, enc.background))
    assert np.all(out[3:] == [1, 2, 3]) and np.all(out[:, 5:] == [1, 2, 3])
    grey = encoder("jpg", background=(1, 2, 3, 255)).prepare(gradient(5, 3, 1), (8, 6))
    assert grey.shape == (6, 8, 1) and np.all(grey[3:] == luminance((1, 2, 3)))


def test_padded_png_tile_decodes_full_size() -> None:
    im = decode(encoder("png", alpha=True).encode(gradient(100, 7, 3), (256, 256), at_bottom=True))
    assert im.size == (256, 256) and im.mode == "RGBA"
    alpha = np.asarray(im)[..., 3]
    assert alpha[249:, :100].min() == 255 and alpha[:249].max() == 0 and alpha[:, 100:].max() == 0


@pytest.mark.parametrize("bands", [1, 2, 3, 4])
@pytest.mark.parametrize("size, at_bottom", [((256, 256), False), ((256, 256), True), ((9, 4), False)])
def test_padded_png_tiles_decode_to_the_prepared_pixels(bands: int, size, at_bottom: bool) -> None:
    enc = encoder("png", alpha=True)
    pixels = gradient(7, 3, bands)
    got = as_array(decode(enc.encode(pixels, size, at_bottom=at_bottom)))
    assert np.array_equal(got, enc.prepare(pixels, size, at_bottom=at_bottom))


def test_png_compress_level_is_used() -> None:
    pixels = gradient(64, 64, 3)
    stored = encoder("png", png_compress_level=0).encode(pixels)
    assert len(stored) > pixels.nbytes  # level 0 keeps every byte, plus filter bytes
    assert len(encoder("png", png_compress_level=9).encode(pixels)) < len(encoder("png").encode(pixels))
    assert np.array_equal(as_array(decode(stored)), pixels)


def test_full_tile_needs_no_copy() -> None:
    pixels = gradient(16, 16, 3)
    assert encoder("png").prepare(pixels) is pixels
    assert encoder("jpg").prepare(pixels) is pixels


def test_non_contiguous_pixels_encode() -> None:
    pixels = gradient(16, 16, 3)[::-1]  # a flipped view, as a TMS tile may arrive
    got = as_array(decode(encoder("png").encode(pixels)))
    assert np.array_equal(got, pixels)


def test_options_are_read() -> None:
    enc = encoder("WEBP".lower(), quality=33, lossless=True)
    assert (enc.format, enc.quality, enc.lossless) == ("WEBP", 33, True)
    assert encoder("jpeg").suffix == "jpeg" and encoder("jpeg").mime_type == "image/jpeg"
    assert encoder("png", png_compress_level=9).compress_level == 9
    with pytest.raises(OptionError, match="png_compress_level"):
        encoder("png", png_compress_level=12)
    with pytest.raises(OptionError, match="suffix"):
        TileEncoder.from_options(BuildOptions(suffix="gif"))


def test_bad_band_count_is_a_bug() -> None:
    with pytest.raises(ValueError):
        encoder("png").encode(np.zeros((4, 4, 5), np.uint8))


@pytest.mark.parametrize("view", ["crop", "flipped", "padded"])
def test_rgb_jpeg_of_a_view_is_the_jpeg_of_its_copy(view: str, monkeypatch) -> None:
    # A DZI tile is a crop of its quad (a TMS tile also flipped), encoded without a copy.
    region = np.random.default_rng(7).integers(0, 256, (40, 50, 3), np.uint8)
    pixels = region[3:30, 5:41]
    if view == "flipped":
        pixels = pixels[::-1]
    enc = TileEncoder("JPEG", quality=85)
    size = (48, 32) if view == "padded" else None
    expected = enc.encode(enc.prepare(pixels.copy(), size))
    if size is None:
        monkeypatch.setattr(TileEncoder, "prepare", None)  # the view must go in as it is
    assert enc.encode(pixels, size) == expected
    assert as_array(decode(enc.encode(pixels, size))).shape == ((32, 48, 3) if size else (27, 36, 3))


@pytest.mark.parametrize("quality", [1, 50, 75, 85, 89, 90, 100])
@pytest.mark.parametrize("shape", [(254, 254), (256, 130), (1, 1), (7, 300)])
def test_rgb_jpeg_is_byte_for_byte_what_pillow_writes(quality: int, shape) -> None:
    # RGB JPEG skips Pillow for speed; the files must not change for it.
    pixels = np.random.default_rng(quality).integers(0, 256, (*shape, 3), np.uint8)
    enc = TileEncoder("JPEG", quality=quality)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, **enc.params())
    assert enc.encode(pixels) == buf.getvalue()
