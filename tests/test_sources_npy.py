"""The ``.npy`` source: memory-mapped region reads and its errors."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from pyramidd.errors import ImageTooLarge, InputError
from pyramidd.options import BuildOptions
from pyramidd.sources.npy import NPY

RNG = np.random.default_rng(3)
H, W = 37, 53

#: Awkward rectangles: whole image, corners, single pixels, edge rows and columns.
RECTS = [
    (0, 0, W, H),
    (0, 0, 1, 1),
    (W - 1, H - 1, 1, 1),
    (W - 1, 0, 1, H),
    (0, H - 1, W, 1),
    (5, 7, 20, 11),
    (13, 0, 1, 1),
]


def truth(array: np.ndarray) -> np.ndarray:
    """The expected 8-bit (h, w, bands), computed independently of the source."""
    if array.ndim == 2:
        array = array[:, :, None]
    if array.dtype == np.bool_:
        return np.where(array, 255, 0).astype(np.uint8)
    if array.dtype.itemsize == 2:
        return np.rint(array.astype(np.float64) / 257.0).astype(np.uint8)
    return array


def save(tmp_path: Path, array: np.ndarray, name: str = "a.npy") -> Path:
    path = tmp_path / name
    np.save(path, array)
    return path


ARRAYS = {
    "hw-u8": lambda: RNG.integers(0, 256, (H, W), dtype=np.uint8),
    "hw1-u8": lambda: RNG.integers(0, 256, (H, W, 1), dtype=np.uint8),
    "la-u8": lambda: RNG.integers(0, 256, (H, W, 2), dtype=np.uint8),
    "rgb-u8": lambda: RNG.integers(0, 256, (H, W, 3), dtype=np.uint8),
    "rgba-u8": lambda: RNG.integers(0, 256, (H, W, 4), dtype=np.uint8),
    "rgb-u16le": lambda: RNG.integers(0, 65536, (H, W, 3)).astype("<u2"),
    "l-u16be": lambda: RNG.integers(0, 65536, (H, W)).astype(">u2"),
    "rgba-fortran": lambda: np.asfortranarray(RNG.integers(0, 256, (H, W, 4), dtype=np.uint8)),
    "bool": lambda: RNG.integers(0, 2, (H, W)).astype(bool),
}


@pytest.mark.parametrize("kind", sorted(ARRAYS))
def test_regions_equal_truth(tmp_path, kind):
    array = ARRAYS[kind]()
    source = NPY.probe(save(tmp_path, array), BuildOptions())
    assert source is not None
    assert (source.width, source.height) == (W, H)
    want = truth(array)
    assert source.bands == want.shape[2]
    source = pickle.loads(pickle.dumps(source))  # sources cross to workers
    reader = source.open()
    try:
        for x, y, w, h in RECTS:
            got = reader.read_region(x, y, w, h)
            assert got.dtype == np.uint8 and got.shape == (h, w, source.bands)
            assert np.array_equal(got, want[y : y + h, x : x + w]), (x, y, w, h)
    finally:
        reader.close()


def test_region_outside_the_image_is_a_bug(tmp_path):
    reader = NPY.probe(save(tmp_path, ARRAYS["hw-u8"]()), BuildOptions()).open()
    with pytest.raises(ValueError):
        reader.read_region(W - 1, 0, 2, 1)


def test_other_files_are_not_mine(tmp_path):
    (tmp_path / "a.txt").write_text("hello")
    (tmp_path / "empty.npy").write_bytes(b"")
    assert NPY.probe(tmp_path / "a.txt", BuildOptions()) is None
    assert NPY.probe(tmp_path / "empty.npy", BuildOptions()) is None
    assert NPY.probe(tmp_path, BuildOptions()) is None


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        NPY.probe(tmp_path / "nope.npy", BuildOptions())


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros((4, 4), np.float32), "dtype float32 is not supported"),
        (np.zeros((4, 4, 3), np.int32), "dtype int32 is not supported"),
        (np.zeros((4, 4, 5), np.uint8), r"shape \(4, 4, 5\) is not an image"),
        (np.zeros(16, np.uint8), r"shape \(16,\) is not an image"),
        (np.zeros((2, 4, 4, 3), np.uint8), "is not an image"),
        (np.zeros((0, 4), np.uint8), "no pixels"),
    ],
)
def test_unsupported_arrays(tmp_path, array, message):
    with pytest.raises(InputError, match=message) as info:
        NPY.probe(save(tmp_path, array), BuildOptions())
    assert str(info.value).startswith("a.npy: ")


def test_truncated_file(tmp_path):
    path = save(tmp_path, ARRAYS["rgb-u8"]())
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(InputError, match="a.npy: truncated"):
        NPY.probe(path, BuildOptions())


def test_corrupt_header(tmp_path):
    path = tmp_path / "a.npy"
    path.write_bytes(b"\x93NUMPY\x01\x00\x10\x00{'descr': garbage")
    with pytest.raises(InputError, match="a.npy: not a readable .npy header"):
        NPY.probe(path, BuildOptions())


def test_pixel_limit(tmp_path):
    path = save(tmp_path, ARRAYS["hw-u8"]())
    with pytest.raises(ImageTooLarge) as info:
        NPY.probe(path, BuildOptions(max_pixels=1000))
    text = str(info.value)
    assert "53x37" in text and "1,961" in text and "1,000" in text and "--max-pixels" in text
