import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyramidd.grid import Grid, TileKey, level_sizes


def test_level_sizes_halve_up_to_one_pixel():
    assert level_sizes(7, 5) == [(1, 1), (2, 2), (4, 3), (7, 5)]
    assert level_sizes(1, 1) == [(1, 1)]
    assert level_sizes(1, 9) == [(1, 1), (1, 2), (1, 3), (1, 5), (1, 9)]


def test_dzi_tile_rects_have_overlap_only_inside():
    g = Grid(600, 300, 254, 1)
    assert g.tiles_across(g.top) == (3, 2)
    assert g.tile_rect(TileKey(g.top, 0, 0)) == (0, 0, 255, 255)
    assert g.tile_rect(TileKey(g.top, 1, 0)) == (253, 0, 509, 255)
    assert g.tile_rect(TileKey(g.top, 2, 1)) == (507, 253, 600, 300)


def test_onetile_depth_stops_at_one_tile():
    g = Grid(520, 300, 256, depth="onetile")
    assert g.level_size(g.min_level) == (130, 75)
    assert [g.tiles_across(level) for level in g.levels()] == [(1, 1), (2, 1), (3, 2)]


@settings(deadline=None, max_examples=60)
@given(st.integers(1, 5000), st.integers(1, 5000), st.integers(1, 600))
def test_children_cover_their_parent_exactly(w, h, t):
    g = Grid(w, h, t)
    for level in range(max(0, g.top - 3), g.top):
        for key in list(g.keys(level))[:50]:
            x0, y0, x1, y1 = g.core(key)
            kids = g.children(key)
            assert kids, key
            assert min(g.core(k)[0] for k in kids) == 2 * x0
            assert min(g.core(k)[1] for k in kids) == 2 * y0
            # ceil(half) of the children's extent is the parent's extent
            assert -(-max(g.core(k)[2] for k in kids) // 2) == x1
            assert -(-max(g.core(k)[3] for k in kids) // 2) == y1
            assert all(g.parent(k) == key for k in kids)


def test_bad_geometry_is_refused():
    with pytest.raises(ValueError):
        Grid(10, 10, 0)
    with pytest.raises(ValueError):
        Grid(10, 10, 8, 8)
    with pytest.raises(ValueError):
        Grid(0, 10, 8)
