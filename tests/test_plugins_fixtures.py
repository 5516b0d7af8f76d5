"""The pytest plugin pyramidd ships for plugin authors (``pyramidd.testing``): its
fixtures build real pyramids, and its reference and structure checks agree with what
the engine writes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pyramidd.grid import Grid
from pyramidd.testing import check_dzi, check_zxy, gradient, reference_levels, reference_tile


def test_make_image_writes_the_gradient(make_image):
    path = make_image(120, 80, 4, ".png")
    np.testing.assert_array_equal(np.asarray(Image.open(path)), gradient(120, 80, 4))


def test_build_pyramid_dzi_agrees_with_the_reference(build_pyramid):
    built = build_pyramid(width=600, height=350, suffix="png", tile_size=128, overlap=2)
    grid = check_dzi(built.output.with_name(built.output.name + ".dzi"))
    levels = reference_levels(built.image, grid)
    files = built.output.with_name(built.output.name + "_files")
    for level in (grid.top, grid.top - 2, 0):
        for key in grid.keys(level):
            stored = np.asarray(Image.open(files / str(level) / f"{key.col}_{key.row}.png"))
            np.testing.assert_array_equal(stored, reference_tile(levels, grid, key))
    assert built.summary.tiles == grid.tile_count()


@pytest.mark.parametrize("layout", ["tms", "xyz"])
def test_build_pyramid_zxy_structure(build_pyramid, layout):
    built = build_pyramid(width=700, height=300, layout=layout, suffix="png")
    check_zxy(built.output, Grid(700, 300, 256, 0, "onetile"), "png")


def test_check_dzi_reports_a_missing_tile(build_pyramid):
    built = build_pyramid(width=300, height=200, suffix="png")
    descriptor = built.output.with_name(built.output.name + ".dzi")
    next(built.output.with_name(built.output.name + "_files").glob("9/*.png")).unlink()
    with pytest.raises(AssertionError, match="missing"):
        check_dzi(descriptor)
