import numpy as np
import pytest

from pyramidd.resamplers import Box, Nearest, Smooth


def test_box_rounds_half_up_like_vips():
    block = np.array([[[1], [2]], [[2], [2]]], np.uint8)  # sum 7 -> (7+2)//4 = 2
    assert Box().reduce(block)[0, 0, 0] == 2
    block = np.array([[[255], [255]], [[255], [254]]], np.uint8)
    assert Box().reduce(block)[0, 0, 0] == 255


def test_box_weights_colour_by_alpha():
    # one opaque red pixel among three transparent green ones: the result is red
    block = np.zeros((2, 2, 4), np.uint8)
    block[..., 1] = 255
    block[0, 0] = (255, 0, 0, 255)
    out = Box().reduce(block)[0, 0]
    assert tuple(out) == (255, 0, 0, 63)  # alpha 255/4 truncated, as vips


def test_box_truncates_alpha_images_like_vips():
    block = np.array([[[10, 255], [11, 255]], [[11, 255], [11, 255]]], np.uint8)
    assert tuple(Box().reduce(block)[0, 0]) == (10, 255)  # 43/4 truncated
    grey = block[..., :1]
    assert Box().reduce(grey)[0, 0, 0] == 11  # without alpha: (43+2)//4


def test_fully_transparent_blocks_have_no_colour():
    block = np.full((2, 2, 2), 200, np.uint8)
    block[..., 1] = 0
    assert tuple(Box().reduce(block)[0, 0]) == (0, 0)
    big = np.full((4, 4, 2), 200, np.uint8)
    big[..., 1] = 0
    assert tuple(Smooth().reduce(big)[0, 0]) == (0, 0)


@pytest.mark.parametrize("resampler", [Box(), Smooth(), Nearest()], ids=lambda r: r.name)
@pytest.mark.parametrize("bands", [1, 2, 3, 4])
def test_flat_images_stay_flat(resampler, bands):
    s = resampler.support
    block = np.full((8 + 2 * s, 6 + 2 * s, bands), 77, np.uint8)
    out = resampler.reduce(block)
    assert out.shape == (4, 3, bands) and out.dtype == np.uint8
    assert (out == 77).all()


def test_nearest_keeps_labels():
    block = np.arange(16, dtype=np.uint8).reshape(4, 4, 1)
    assert Nearest().reduce(block)[..., 0].tolist() == [[0, 2], [8, 10]]


def test_smooth_is_a_tent_filter():
    block = np.zeros((4, 4, 1), np.uint8)
    block[1, 1] = 64  # weight 3*3 of 64 in all
    assert Smooth().reduce(block)[0, 0, 0] == (9 * 64 + 32) >> 6


@pytest.mark.parametrize("bands", [1, 3, 5])
@pytest.mark.parametrize("strided", [False, True], ids=["contiguous", "view"])
def test_box_without_alpha_is_the_rounded_mean_of_every_block(bands, strided):
    """Every pixel of a noisy block, against the formula: OpenCV's SIMD paths must round
    as libvips does, on whole arrays and on the row-strided views the builder passes."""
    rng = np.random.default_rng(bands)
    big = rng.integers(0, 256, (70, 90, bands), np.uint8)
    block = big[3:67, 5:85] if strided else np.ascontiguousarray(big[3:67, 5:85])
    b = block.astype(np.int32)
    want = (b[0::2, 0::2] + b[1::2, 0::2] + b[0::2, 1::2] + b[1::2, 1::2] + 2) // 4
    out = Box().reduce(block)
    assert out.shape == (32, 40, bands) and out.dtype == np.uint8
    assert np.array_equal(out, want)
