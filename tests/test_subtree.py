import weakref

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference as ref
from pyramidd import planner, subtree
from pyramidd.grid import Grid, Halo
from pyramidd.resamplers import Box, Nearest, Smooth

RESAMPLERS = [Box(), Nearest(), Smooth()]


def test_child_halo_faces_out_of_the_quad():
    parent = Halo(1, 1, 1, 1)
    # top-left child: needs the parent's left and top halo doubled, nothing inside the quad
    assert subtree.child_halo(parent, 0, 0, overlap=1, support=0) == Halo(2, 2, 0, 0)
    assert subtree.child_halo(parent, 1, 1, overlap=1, support=0) == Halo(0, 0, 2, 2)
    # a filter with support reads one pixel more on top of the doubled halo
    assert subtree.child_halo(parent, 0, 1, overlap=1, support=1) == Halo(3, 0, 0, 3)
    # without a parent halo, the child still needs its own overlap
    assert subtree.child_halo(Halo(0, 0, 0, 0), 0, 0, overlap=2, support=0) == Halo(2, 2, 0, 0)


def build_all(img, grid, resampler, workers=2):
    """Run every subtree in-process; return emitted tiles and pixels read."""
    reader = ref.ArrayReader(img)
    got = {}

    def emit(key, region):
        assert key not in got, f"{key} emitted twice"
        got[key] = subtree.crop(region, grid.tile_rect(key)).copy()

    plan = planner.plan(grid, workers)
    for root in plan.subtrees:
        subtree.build_subtree(grid, root, reader, resampler, emit)
    return plan, got, reader.pixels_read


@pytest.mark.parametrize("resampler", RESAMPLERS, ids=lambda r: r.name)
@pytest.mark.parametrize(
    "w,h,t,o",
    [(1, 1, 254, 1), (1, 300, 16, 1), (255, 253, 254, 1), (1000, 700, 254, 1),
     (517, 301, 64, 2), (97, 131, 8, 0), (130, 67, 16, 3)],
)
def test_builders_agree_with_the_whole_image_reference(w, h, t, o, resampler):
    img = np.random.default_rng(w * h).integers(0, 256, (h, w, 3), dtype=np.uint8)
    grid = Grid(w, h, t, o)
    want = ref.tiles(img, resampler, grid)
    plan, got, _ = build_all(img, grid, resampler)
    expected = {k for k in want if k.level >= plan.builder_level}
    assert set(got) == expected
    for key in expected:
        np.testing.assert_array_equal(got[key], want[key], err_msg=str(key))


@settings(deadline=None, max_examples=25)
@given(st.integers(1, 700), st.integers(1, 700), st.sampled_from([(8, 0), (16, 1), (32, 3)]),
       st.sampled_from(RESAMPLERS))
def test_builders_agree_on_any_size(w, h, tile, resampler):
    t, o = tile
    img = np.random.default_rng(w + 7 * h).integers(0, 256, (h, w, 2), dtype=np.uint8)
    grid = Grid(w, h, t, o)
    want = ref.tiles(img, resampler, grid)
    _, got, _ = build_all(img, grid, resampler)
    for key, pixels in got.items():
        np.testing.assert_array_equal(pixels, want[key], err_msg=str(key))


def test_each_source_pixel_is_read_about_once():
    img = np.zeros((4096, 4096, 1), np.uint8)
    _, _, read = build_all(img, Grid(4096, 4096, 254, 1), Box())
    # halos along quad edges only: a few percent, never a second pass
    assert read < 1.06 * img.size
    _, _, read = build_all(img, Grid(4096, 4096, 256, 0), Box())
    assert read == img.size


def test_memory_is_a_few_tiles_per_level(monkeypatch):
    live = weakref.WeakSet()
    peak = [0]

    class Tracked(subtree.Region):
        def __post_init__(self):
            live.add(self)
            peak[0] = max(peak[0], len(live))

    monkeypatch.setattr(subtree, "Region", Tracked)
    grid = Grid(8192, 8192, 64, 1)
    img = np.zeros((8192, 8192, 1), np.uint8)
    root = grid.ancestor(next(grid.keys(grid.top)), grid.top - 6)  # a 64x64-tile subtree
    subtree.build_subtree(grid, root, ref.ArrayReader(img), Box(), lambda k, r: None)
    levels = grid.top - root.level + 1
    # per level: at most three finished siblings + the fourth, plus the quad being merged
    assert peak[0] <= 5 * levels + 1
