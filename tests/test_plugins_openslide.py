"""The whole-slide plugin of plugins/pyramidd-openslide: discovered through its entry
point, preferred to the built-in TIFF source for slides, and building a Deep Zoom
pyramid from a small generated Aperio slide through the real ``pyramidd build``."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from pyramidd import plugins
from pyramidd.options import BuildOptions
from pyramidd.testing import check_dzi, gradient

pytest.importorskip("openslide", reason="openslide-python is not installed (scripts/setup)")
testslide = pytest.importorskip("pyramidd_openslide.testslide")


def test_discovered_and_preferred_for_slides(tmp_path):
    slide = testslide.write_aperio_svs(tmp_path / "a.svs", gradient(300, 200, 3))
    registry = plugins.load().registry
    assert registry.entries[("source", "openslide")].plugin == "openslide"
    source = registry.probe(slide, BuildOptions())
    assert type(source).__name__ == "SlideSource" and source.vendor == "aperio"


def test_pyramidd_build_reads_a_slide(tmp_path):
    image = gradient(600, 400, 3)
    slide = testslide.write_aperio_svs(tmp_path / "slide.svs", image, compression="zlib")
    subprocess.run(
        [sys.executable, "-m", "pyramidd.cli", "build", str(slide), str(tmp_path / "out" / "slide"),
         "--suffix", "png", "--workers", "2"],
        check=True, capture_output=True, timeout=120,
    )
    grid = check_dzi(tmp_path / "out" / "slide.dzi")
    assert (grid.width, grid.height) == (600, 400)
    key = next(grid.keys(grid.top))
    x0, y0, x1, y1 = grid.tile_rect(key)
    tile = np.asarray(Image.open(tmp_path / "out" / "slide_files" / str(grid.top) / "0_0.png"))
    np.testing.assert_array_equal(tile, image[y0:y1, x0:x1])
