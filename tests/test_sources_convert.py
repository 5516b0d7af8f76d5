"""The mode-conversion rule every built-in source applies."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pyramidd.errors import InputError
from pyramidd.sources.convert import (
    SUPPORTED,
    Conversion,
    cmyk_to_rgb,
    lab_to_rgb,
    palette_table,
    scale16,
    scale_bits,
    unsupported,
    ycbcr_to_rgb,
)

RNG = np.random.default_rng(7)


def test_scale16_is_the_rounded_linear_map_for_every_value():
    v = np.arange(65536, dtype=np.uint16)
    got = scale16(v)
    assert got.dtype == np.uint8
    # Nearest integer to v * 255 / 65535, computed in exact integers (no ties occur).
    want = (v.astype(np.int64) * 255 * 2 + 65535) // (2 * 65535)
    assert np.array_equal(got, want)
    assert got[0] == 0 and got[65535] == 255


def test_scale16_accepts_big_endian_and_32_bit_containers():
    v = np.array([0, 128, 129, 65535], ">u2")
    assert scale16(v).tolist() == [0, 0, 1, 255]
    assert scale16(v.astype(np.int32)).tolist() == [0, 0, 1, 255]


@pytest.mark.parametrize("bits, top", [(1, 1), (2, 3), (4, 15)])
def test_low_bit_grey_stretches_to_full_range(bits, top):
    v = np.arange(top + 1, dtype=np.uint8)
    got = scale_bits(v, bits)
    assert got[0] == 0 and got[-1] == 255
    assert np.all(np.diff(got.astype(int)) > 0)


def test_bool_samples_become_0_and_255_whatever_byte_holds_true():
    # Pillow's mode "1" arrays hold 255 for True; numpy's hold 1.
    pillow = np.asarray(Image.fromarray(np.array([[0, 255]], np.uint8)).convert("1"))
    assert scale_bits(pillow, 1).tolist() == [[0, 255]]
    assert scale_bits(np.array([[False, True]]), 1).tolist() == [[0, 255]]


def test_cmyk_matches_pillow():
    cmyk = RNG.integers(0, 256, (31, 17, 4), dtype=np.uint8)
    want = np.asarray(Image.fromarray(cmyk, "CMYK").convert("RGB"))
    assert np.array_equal(cmyk_to_rgb(cmyk), want)


def test_ycbcr_matches_pillow_within_one():
    ycc = RNG.integers(0, 256, (31, 17, 3), dtype=np.uint8)
    want = np.asarray(Image.fromarray(ycc, "YCbCr").convert("RGB")).astype(int)
    assert np.abs(ycbcr_to_rgb(ycc).astype(int) - want).max() <= 1


def test_lab_neutral_axis_is_grey():
    lab = np.array([[[0, 0, 0], [255, 0, 0], [128, 0, 0]]], np.uint8)
    rgb = lab_to_rgb(lab, signed_ab=True)
    assert rgb[0, 0].tolist() == [0, 0, 0]
    assert rgb[0, 1].tolist() == [255, 255, 255]
    assert len(set(rgb[0, 2].tolist())) == 1
    offset = lab.copy()
    offset[..., 1:] = 128
    assert np.array_equal(lab_to_rgb(offset, signed_ab=False), rgb)


def test_lab_positive_a_is_red():
    r, g, b = lab_to_rgb(np.array([[[135, 80, 60]]], np.uint8), signed_ab=True)[0, 0]
    assert r > 200 and g < 100 and b < 100


@pytest.mark.parametrize("colour, alpha, bands", [("grey", False, 1), ("grey", True, 2), ("rgb", False, 3), ("rgb", True, 4)])
def test_8_bit_passes_through_as_a_view(colour, alpha, bands):
    conversion = Conversion(colour, alpha=alpha)
    raw = RNG.integers(0, 256, (5, 6, bands), dtype=np.uint8)
    out = conversion.apply(raw)
    assert out is raw
    assert conversion.bands == bands and conversion.identity


def test_2d_grey_gains_a_band_axis():
    raw = RNG.integers(0, 256, (5, 6), dtype=np.uint8)
    assert np.array_equal(Conversion("grey").apply(raw), raw[:, :, None])


def test_16_bit_rgba_scales_every_band_including_alpha():
    raw = RNG.integers(0, 65536, (4, 5, 4)).astype(np.uint16)
    out = Conversion("rgb", bits=16, alpha=True).apply(raw)
    assert out.shape == (4, 5, 4) and out.dtype == np.uint8
    assert np.array_equal(out, scale16(raw))


def test_min_is_white_inverts_grey_but_not_alpha():
    raw = np.array([[[0, 10], [255, 200]]], np.uint8)
    out = Conversion("grey", alpha=True, invert=True).apply(raw)
    assert out.tolist() == [[[255, 10], [0, 200]]]


def test_extra_samples_are_dropped():
    raw = RNG.integers(0, 256, (3, 3, 5), dtype=np.uint8)
    assert np.array_equal(Conversion("rgb", alpha=True).apply(raw), raw[:, :, :4])


def test_palette_to_rgb_and_rgba():
    colours = RNG.integers(0, 256, (3, 4), dtype=np.uint8)
    table = palette_table(colours, 2)
    assert table.shape == (4, 4) and table[3].tolist() == [0, 0, 0, 255]
    index = np.array([[0, 1], [2, 3]], np.uint8)
    out = Conversion("palette", bits=2, palette=table).apply(index)
    assert out.shape == (2, 2, 4)
    assert out[1, 0].tolist() == colours[2].tolist()
    rgb = Conversion("palette", bits=2, palette=np.ascontiguousarray(table[:, :3]))
    assert rgb.bands == 3 and rgb.apply(index)[0, 1].tolist() == colours[1, :3].tolist()


def test_palette_index_past_the_table_is_clamped_not_an_index_error():
    table = palette_table(np.array([[1, 2, 3]], np.uint8), 1)
    out = Conversion("palette", bits=1, palette=table).apply(np.array([[0, 1, 7]], np.uint8))
    assert out[0, 0].tolist() == [1, 2, 3] and out[0, 2].tolist() == [0, 0, 0]


def test_palette_with_alpha_band():
    table = palette_table(np.array([[9, 8, 7], [1, 2, 3]], np.uint8), 8)
    raw = np.array([[[1, 77]]], np.uint8)
    out = Conversion("palette", palette=table, alpha=True).apply(raw)
    assert out.tolist() == [[[1, 2, 3, 77]]]


def test_cmyk_with_alpha_is_rgba():
    raw = np.array([[[0, 0, 0, 0, 128]]], np.uint8)
    out = Conversion("cmyk", alpha=True).apply(raw)
    assert out.tolist() == [[[255, 255, 255, 128]]]


def test_too_few_samples_is_an_error():
    with pytest.raises(ValueError):
        Conversion("rgb").apply(np.zeros((2, 2, 2), np.uint8))


def test_unknown_colour_model_is_a_bug():
    with pytest.raises(ValueError):
        Conversion("hsv")


def test_unsupported_message_names_the_file_and_what_is_supported():
    err = unsupported("scan.tif", "32-bit floating-point samples")
    assert isinstance(err, InputError)
    text = str(err)
    assert text.startswith("scan.tif: 32-bit floating-point samples is not supported")
    assert SUPPORTED in text and "\n" not in text


PILLOW_TIFFS = {
    "L": lambda: Image.fromarray(RNG.integers(0, 256, (20, 30), dtype=np.uint8)),
    "RGB": lambda: Image.fromarray(RNG.integers(0, 256, (20, 30, 3), dtype=np.uint8)),
    "RGBA": lambda: Image.fromarray(RNG.integers(0, 256, (20, 30, 4), dtype=np.uint8)),
    "1": lambda: Image.fromarray(RNG.integers(0, 256, (20, 30), dtype=np.uint8)).convert("1"),
    "P": lambda: Image.fromarray(RNG.integers(0, 256, (20, 30, 3), dtype=np.uint8)).convert("P"),
    "I;16": lambda: Image.fromarray(RNG.integers(0, 65536, (20, 30)).astype(np.uint16)),
    "CMYK": lambda: Image.fromarray(RNG.integers(0, 256, (20, 30, 4), dtype=np.uint8), "CMYK"),
    "YCbCr": lambda: Image.fromarray(RNG.integers(0, 256, (20, 30, 3), dtype=np.uint8), "YCbCr"),
    "LAB": lambda: Image.fromarray(RNG.integers(0, 256, (20, 30, 3), dtype=np.uint8), "LAB"),
}


@pytest.mark.parametrize("mode", sorted(PILLOW_TIFFS))
def test_pillow_and_tiff_sources_apply_the_same_rule(tmp_path, mode):
    """The same file read by both sources (Pillow decodes TIFF too) gives the same pixels."""
    from pyramidd.options import BuildOptions
    from pyramidd.sources.pillow import PILLOW
    from pyramidd.sources.tiff import TIFF

    path = tmp_path / "a.tif"
    PILLOW_TIFFS[mode]().save(path)
    by_pillow = PILLOW.probe(path, BuildOptions())
    by_tiff = TIFF.probe(path, BuildOptions())
    assert by_pillow.mode == mode
    assert by_pillow.bands == by_tiff.bands
    a, b = by_pillow.open(), by_tiff.open()
    assert np.array_equal(a.read_region(0, 0, 30, 20), b.read_region(0, 0, 30, 20))
    a.close()
    b.close()


def test_npy_and_tiff_sources_apply_the_same_16_bit_rule(tmp_path):
    from pyramidd.options import BuildOptions
    from pyramidd.sources.npy import NPY
    from pyramidd.sources.tiff import TIFF

    samples = RNG.integers(0, 65536, (20, 30, 3)).astype(np.uint16)
    np.save(tmp_path / "a.npy", samples)
    import tifffile

    tifffile.imwrite(tmp_path / "a.tif", samples, photometric="rgb")
    a = NPY.probe(tmp_path / "a.npy", BuildOptions()).open()
    b = TIFF.probe(tmp_path / "a.tif", BuildOptions()).open()
    assert np.array_equal(a.read_region(0, 0, 30, 20), b.read_region(0, 0, 30, 20))
    assert np.array_equal(a.read_region(0, 0, 30, 20), scale16(samples))
    a.close()
    b.close()


def test_a_colour_key_adds_alpha_from_the_raw_samples():
    grey16 = np.array([[7, 8], [7, 65535]], np.uint16)
    out = Conversion("grey", bits=16, key=(7,)).apply(grey16)
    assert out.shape == (2, 2, 2)
    assert out[:, :, 0].tolist() == [[0, 0], [0, 255]]  # 7 and 8 both scale to 0 ...
    assert out[:, :, 1].tolist() == [[0, 255], [0, 255]]  # ... but only 7 is the key
    rgb = np.array([[[1, 2, 3], [1, 2, 4]]], np.uint8)
    keyed = Conversion("rgb", key=(1, 2, 3))
    assert keyed.bands == 4 and not keyed.identity
    assert keyed.apply(rgb).tolist() == [[[1, 2, 3, 0], [1, 2, 4, 255]]]
    # a decoder that already turned the key into an alpha sample: that sample is dropped
    assert keyed.apply(np.concatenate([rgb, np.full((1, 2, 1), 9, np.uint8)], axis=2)).tolist() \
        == [[[1, 2, 3, 0], [1, 2, 4, 255]]]
    assert Conversion("grey", bits=1, key=(1,)).apply(np.array([[True, False]])).tolist() \
        == [[[255, 0], [0, 255]]]


@pytest.mark.parametrize("kwargs", [
    {"colour": "rgb", "key": (1,)}, {"colour": "grey", "alpha": True, "key": (1,)},
    {"colour": "cmyk", "key": (1, 2, 3, 4)},
])
def test_a_colour_key_only_for_grey_or_rgb_without_alpha(kwargs):
    with pytest.raises(ValueError, match="colour key"):
        Conversion(**kwargs)
