"""Banded builds of front-to-back images (PNG, JPEG): real workers, tiles checked
against the whole-image reference, memory of the decode bounded by the bands."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import anyio
import numpy as np
import pytest
import reference as ref
from PIL import Image

from pyramidd import bands, errors, shm
from pyramidd.engine import build
from pyramidd.grid import Grid
from pyramidd.options import BuildOptions
from pyramidd.pool import WorkerPool
from pyramidd.resamplers import Box, Nearest, Smooth

RESAMPLERS = {"box": Box(), "nearest": Nearest(), "smooth": Smooth()}

CASES = [
    # w, h, tile, overlap, resampler, depth, flip, budget
    (300, 1, 254, 1, "box", "onepixel", False, 1 << 10),
    (255, 777, 254, 1, "box", "onepixel", False, 64 << 10),
    (1031, 509, 256, 0, "nearest", "onetile", False, 1 << 10),
    (1031, 509, 256, 0, "box", "onetile", True, 1 << 10),
    (257, 1999, 64, 3, "smooth", "onetile", True, 400 << 10),
    (2049, 1025, 128, 1, "smooth", "onepixel", False, 2 << 20),
]


def run(jobs, workers):
    async def main():
        async with WorkerPool(workers) as pool:
            return [await build(i, o, opts, pool=pool) for i, o, opts in jobs]

    return anyio.run(main)


def flipped_reference(img, resampler, grid, flip):
    if not flip:
        return ref.tiles(img, resampler, grid)
    return {k: v[::-1] for k, v in ref.tiles(img[::-1], resampler, grid).items()}


def _leftover_segments():
    return {p.name for p in Path("/dev/shm").glob(f"{shm.PREFIX}{os.getpid()}_*")}


@pytest.mark.parametrize("workers", [1, 2])
def test_banded_png_builds_agree_with_the_reference(tmp_path, rawplugin, workers):
    rng = np.random.default_rng(workers)
    jobs, expect = [], []
    before = _leftover_segments()
    for i, (w, h, t, o, r, depth, flip, budget) in enumerate(CASES):
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        src = tmp_path / f"in{i}.png"
        Image.fromarray(img).save(src)
        opts = BuildOptions(layout="raw", tile_size=t, overlap=o, resampler=r,
                            extra={"depth": depth, "flip_y": flip, "memory_budget": budget})
        jobs.append((src, tmp_path / f"out{i}", opts))
        grid = Grid(w, h, t, o, depth)
        expect.append((grid, flipped_reference(img, RESAMPLERS[r], grid, flip)))
    summaries = run(jobs, workers)
    for (src, out, _), (grid, want), summary in zip(jobs, expect, summaries):
        assert summary.details.get("bands", 0) >= 1, (src, summary.details)
        got = rawplugin.read_tiles(out)
        assert set(got) == set(want), src
        for key in want:
            np.testing.assert_array_equal(got[key], want[key], err_msg=f"{src} {key}")
    # Builds of more than one band, with the builder level above the tiles too.
    assert any(s.details["bands"] > 3 for s in summaries)
    assert any(s.details["builder_level"] < Grid(2049, 1025, 128, 1).top for s in summaries)
    assert _leftover_segments() == before


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P"])
def test_banded_png_modes_convert_as_whole_decoding_does(tmp_path, rawplugin, mode):
    rng = np.random.default_rng(7)
    img = Image.fromarray(rng.integers(0, 256, (300, 517, 3), dtype=np.uint8))
    if mode == "P":
        img = img.quantize(200)
        img.save(tmp_path / "in.png", transparency=bytes(range(0, 200)))
    else:
        img.convert(mode).save(tmp_path / "in.png")
    opts = {"depth": "onepixel"}
    jobs = [
        (tmp_path / "in.png", tmp_path / "whole", BuildOptions(layout="raw", tile_size=64,
                                                              extra=opts)),
        (tmp_path / "in.png", tmp_path / "banded",
         BuildOptions(layout="raw", tile_size=64, extra={**opts, "memory_budget": 1 << 10})),
    ]
    whole, banded = run(jobs, 2)
    assert "bands" not in whole.details and banded.details["bands"] > 1
    a, b = rawplugin.read_tiles(tmp_path / "whole"), rawplugin.read_tiles(tmp_path / "banded")
    assert set(a) == set(b)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=str(key))


@pytest.mark.parametrize("quality,grey", [(90, False), (75, True)])
def test_banded_jpeg_equals_whole_decoding(tmp_path, rawplugin, quality, grey):
    rng = np.random.default_rng(quality)
    img = np.cumsum(rng.integers(0, 6, (777, 1031, 3)), axis=1).astype(np.uint8)
    pil = Image.fromarray(img)
    (pil.convert("L") if grey else pil).save(tmp_path / "in.jpg", quality=quality)
    jobs = [
        (tmp_path / "in.jpg", tmp_path / "whole", BuildOptions(layout="raw", tile_size=128)),
        (tmp_path / "in.jpg", tmp_path / "banded",
         BuildOptions(layout="raw", tile_size=128, extra={"memory_budget": 100 << 10})),
    ]
    whole, banded = run(jobs, 2)
    assert banded.details["bands"] > 1
    a, b = rawplugin.read_tiles(tmp_path / "whole"), rawplugin.read_tiles(tmp_path / "banded")
    assert set(a) == set(b)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=str(key))


@pytest.mark.parametrize("suffix", ["png", "jpg"])
def test_truncated_input_fails_a_banded_build_cleanly(tmp_path, rawplugin, suffix):
    rng = np.random.default_rng(3)
    img = np.cumsum(rng.integers(0, 6, (900, 700, 3)), axis=1).astype(np.uint8)
    src = tmp_path / f"in.{suffix}"
    Image.fromarray(img).save(src)
    data = src.read_bytes()
    src.write_bytes(data[: len(data) * 2 // 3])
    before = _leftover_segments()
    opts = BuildOptions(layout="raw", tile_size=64, extra={"memory_budget": 64 << 10})
    with pytest.raises(errors.InputError, match="truncated|corrupt"):
        run([(src, tmp_path / "out", opts)], 2)
    assert not (tmp_path / "out").exists()
    assert _leftover_segments() == before


def test_interlaced_and_low_bit_png_are_decoded_whole(tmp_path, rawplugin, monkeypatch):
    rng = np.random.default_rng(5)
    img = Image.fromarray(rng.integers(0, 256, (200, 300, 3), dtype=np.uint8))
    img.save(tmp_path / "plain.png")
    # Pillow writes no Adam7; libvips does (the suite installs it for the parity tests).
    subprocess.run(["vips", "copy", tmp_path / "plain.png",
                    f"{tmp_path / 'interlaced.png'}[interlace]"], check=True)
    assert Image.open(tmp_path / "interlaced.png").info.get("interlace")
    img.convert("1").save(tmp_path / "bits.png")
    # Over the size at which an image is built in bands, well within the budget
    monkeypatch.setattr(bands, "WHOLE_CAP", 1 << 10)
    for name in ("interlaced.png", "bits.png"):
        opts = BuildOptions(layout="raw", tile_size=64, extra={"memory_budget": 1 << 30})
        (summary,) = run([(tmp_path / name, tmp_path / name.replace(".", "_"), opts)], 1)
        assert "bands" not in summary.details, name


# --------------------------------------------------------------------------- planning


def test_margin_is_the_halo_of_the_deepest_tiles():
    grid = Grid(40000, 30000, 254, 1)
    assert bands.margin(grid, grid.top, 1) == 1
    assert bands.margin(grid, grid.top - 1, 1) == 3  # 2 * 1 + 1
    assert bands.margin(grid, grid.top - 3, 1) == 15
    assert bands.margin(Grid(4000, 3000, 256, 0), 9, 0) == 0


@pytest.mark.parametrize("flip", [False, True])
def test_bands_cover_the_image_in_source_order_with_their_subtrees(flip):
    grid = Grid(5000, 3333, 254, 1)
    level = grid.top - 2
    got = bands.bands_at(grid, level, 1, flip)
    cols, rows = grid.tiles_across(level)
    assert len(got) == rows
    assert got[0].y0 == 0 and got[-1].y1 == grid.height
    for a, b in zip(got, got[1:]):
        assert b.y0 <= a.y1 and a.y0 < b.y0  # neighbours share the halo rows, in order
    assert sorted(k for b in got for k in b.subtrees) == sorted(
        (level, c, r) for c in range(cols) for r in range(rows)
    )
    first_row = got[0].subtrees[0].row
    assert first_row == (rows - 1 if flip else 0)


def test_plan_fits_two_slots_in_the_budget_and_prefers_big_subtrees():
    grid = Grid(30000, 30000, 254, 1)
    budget = 1 << 30
    plan = bands.plan(grid, 2, budget, 3, 1, False)
    slot = plan.slot_rows * grid.width * 3
    limit = min(budget * bands.BAND_SHARE, bands.BAND_CAP)
    assert 2 * slot <= limit
    level = plan.plan.builder_level
    assert len(plan.bands) >= bands.MIN_BANDS
    # One level shallower would not fit, or would give too few bands.
    shallower = bands.bands_at(grid, level - 1, 1, False)
    assert (2 * bands.slot_bytes(grid, shallower, 3) > limit
            or len(shallower) < bands.MIN_BANDS)
    assert len(plan.plan.subtrees) == grid.tiles_across(level)[0] * grid.tiles_across(level)[1]


def test_images_over_half_the_budget_or_the_cap_are_banded():
    assert not bands.should_band(100, 200)
    assert bands.should_band(101, 200)
    assert not bands.should_band(bands.WHOLE_CAP, 1 << 40)
    assert bands.should_band(bands.WHOLE_CAP + 1, 1 << 40)
    assert bands.memory_budget(BuildOptions(extra={"memory_budget": 12345})) == 12345
    assert bands.memory_budget(BuildOptions()) > 0
