"""The oracle over the real layouts: every tile of DZI, TMS and XYZ pyramids equals
the whole-image reference, for awkward sizes, tile sizes, overlaps and worker counts."""

from __future__ import annotations

from pathlib import Path

import anyio
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import reference as ref
from pyramidd.engine import build
from pyramidd.grid import Grid
from pyramidd.options import BuildOptions
from pyramidd.pool import WorkerPool
from pyramidd.resamplers import Box

SIZES = [(1, 1), (1, 300), (300, 1), (253, 255), (255, 257), (257, 253), (509, 251), (4097, 2049)]
DZI_TILES = [(254, 1), (256, 0), (510, 2)]
MAP_TILES = [256, 510]


def read_png(path: Path) -> np.ndarray:
    a = np.asarray(Image.open(path))
    return a[:, :, None] if a.ndim == 2 else a


def check_dzi(out: Path, img: np.ndarray, t: int, o: int) -> int:
    grid = Grid(img.shape[1], img.shape[0], t, o)
    want = ref.tiles(img, Box(), grid)
    files = sorted((out.parent / f"{out.name}_files").rglob("*.png"))
    assert len(files) == len(want)
    for key, pixels in want.items():
        got = read_png(out.parent / f"{out.name}_files" / str(key.level) / f"{key.col}_{key.row}.png")
        np.testing.assert_array_equal(got, pixels, err_msg=f"{out} {key}")
    return len(want)


def check_map(out: Path, img: np.ndarray, t: int, layout: str) -> int:
    """TMS rows count from the bottom and its grid is anchored there; XYZ from the top."""
    flip = layout == "tms"
    grid = Grid(img.shape[1], img.shape[0], t, 0, "onetile")
    base = img[::-1] if flip else img
    want = ref.tiles(base, Box(), grid)
    assert len(list(out.rglob("*.png"))) == len(want)
    for key, pixels in want.items():
        z = key.level - grid.min_level
        got = read_png(out / str(z) / str(key.col) / f"{key.row}.png")
        assert got.shape[:2] == (t, t)
        h, w = pixels.shape[:2]
        data = pixels[::-1] if flip else pixels
        # data at the top-left (XYZ) or bottom-left (TMS); the rest transparent
        rows = slice(t - h, t) if flip else slice(0, h)
        np.testing.assert_array_equal(got[rows, :w, :3], data, err_msg=f"{out} {key}")
        assert (got[rows, :w, 3] == 255).all()
        mask = np.ones((t, t), bool)
        mask[rows, :w] = False
        assert (got[mask][:, 3] == 0).all()
    return len(want)


def run(jobs, workers):
    async def main():
        async with WorkerPool(workers) as pool:
            return [await build(i, o, opts, pool=pool) for i, o, opts in jobs]

    return anyio.run(main)


def save(folder: Path, img: np.ndarray, name: str) -> Path:
    path = folder / f"{name}.npy"
    np.save(path, img)
    return path


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_every_layout_agrees_with_the_reference(tmp_path, workers):
    rng = np.random.default_rng(workers)
    jobs, checks = [], []
    for i, (w, h) in enumerate(SIZES):
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        src = save(tmp_path, img, f"in{i}")
        for t, o in DZI_TILES:
            out = tmp_path / f"dzi{i}_{t}"
            jobs.append((src, out, BuildOptions(layout="dzi", tile_size=t, overlap=o, suffix="png")))
            checks.append(lambda out=out, img=img, t=t, o=o: check_dzi(out, img, t, o))
        for t in MAP_TILES:
            for layout in ("tms", "xyz"):
                out = tmp_path / f"{layout}{i}_{t}"
                jobs.append((src, out, BuildOptions(layout=layout, tile_size=t, suffix="png")))
                checks.append(lambda out=out, img=img, t=t, layout=layout: check_map(out, img, t, layout))
    summaries = run(jobs, workers)
    for check, summary in zip(checks, summaries):
        assert check() == summary.tiles


@settings(deadline=None, max_examples=12)
@given(st.integers(1, 1200), st.integers(1, 1200), st.sampled_from([(64, 1), (128, 0), (100, 3)]),
       st.integers(1, 3))
def test_dzi_agrees_on_any_size(tmp_path_factory, w, h, tile, workers):
    folder = tmp_path_factory.mktemp("dzi")
    img = np.random.default_rng(w * h).integers(0, 256, (h, w, 4), dtype=np.uint8)
    src = save(folder, img, "in")
    t, o = tile
    [summary] = run([(src, folder / "out", BuildOptions(tile_size=t, overlap=o, suffix="png"))], workers)
    assert check_dzi(folder / "out", img, t, o) == summary.tiles
