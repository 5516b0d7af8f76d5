"""Tests of the IIIF level 0 sink."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pyramidd.errors import OptionError
from pyramidd.grid import Grid, TileKey
from pyramidd.options import BuildOptions
from pyramidd.testing import gradient, write_image
from pyramidd_iiif import IIIFFormat
from pyramidd_iiif.sink import tile_uri


def tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("default.*")}


def test_canonical_uris():
    grid = Grid(1500, 1000, 256, 0, "onetile")
    assert tile_uri(grid, TileKey(grid.top, 0, 0)) == ("0,0,256,256", "256,256")
    assert tile_uri(grid, TileKey(grid.top, 5, 3)) == ("1280,768,220,232", "220,232")
    assert tile_uri(grid, TileKey(grid.top - 2, 1, 0)) == ("1024,0,476,1000", "119,250")
    assert tile_uri(grid, TileKey(grid.min_level, 0, 0)) == ("full", "188,125")
    small = Grid(200, 100, 256, 0, "onetile")
    assert tile_uri(small, TileKey(small.top, 0, 0)) == ("full", "max")


def test_every_tile_is_its_region_of_the_image(run_sink, tmp_path):
    image = gradient(700, 420, 3)
    run = run_sink(IIIFFormat(), image, tmp_path / "img", suffix="png")
    root = tmp_path / "img"
    assert len(tree(root)) == run.grid.tile_count()
    info = json.loads((root / "info.json").read_text())
    assert info["profile"] == "level0" and (info["width"], info["height"]) == (700, 420)
    assert info["tiles"] == [{"width": 256, "scaleFactors": [1, 2, 4]}]
    assert info["id"] == "img" and info["preferredFormats"] == ["png"]
    region = np.asarray(Image.open(root / "512,256,188,164" / "188,164" / "0" / "default.png"))
    np.testing.assert_array_equal(region, image[256:, 512:])


def test_base_url_makes_the_id_absolute(run_sink, tmp_path):
    run_sink(IIIFFormat(), output=tmp_path / "img", iiif_base="https://images.example.org/iiif/")
    info = json.loads((tmp_path / "img" / "info.json").read_text())
    assert info["id"] == "https://images.example.org/iiif/img"


def test_overlap_is_refused():
    with pytest.raises(OptionError, match="drop --overlap"):
        IIIFFormat().rules(BuildOptions(overlap=1))


@pytest.mark.skipif(shutil.which("vips") is None, reason="libvips-tools is not installed")
def test_same_tiles_as_vips_dzsave_iiif3(run_sink, tmp_path):
    image = gradient(1500, 1000, 3)
    source = write_image(tmp_path / "in.png", image)
    subprocess.run(["vips", "dzsave", str(source), str(tmp_path / "vips"), "--layout", "iiif3",
                    "--tile-size", "256", "--overlap", "0", "--suffix", ".png"],
                   check=True, timeout=120)
    run_sink(IIIFFormat(), image, tmp_path / "ours", suffix="png")
    # vips names the whole image "0,0,W,H" where the canonical form is "full".
    theirs = {t.replace("0,0,1500,1000/", "full/") for t in tree(tmp_path / "vips")}
    assert tree(tmp_path / "ours") == theirs


def test_discovered(pyramidd_registry):
    assert pyramidd_registry.entries[("sink", "iiif")].plugin == "iiif"


def test_builds_through_the_engine_with_a_page(build_pyramid):
    built = build_pyramid(width=600, height=400, layout="iiif")
    assert (built.output / "info.json").is_file()
    assert "default.jpg" in {p.name for p in built.output.rglob("default.*")}
    page = built.output / "index.html"
    if page.exists():  # written when pyramidd's viewer libraries are installed
        assert '<meta name="pyramidd-layout" content="iiif">' in page.read_text()
