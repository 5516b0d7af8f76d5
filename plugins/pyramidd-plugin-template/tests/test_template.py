"""Tests of the template's formats, with the fixtures of pyramidd's pytest plugin."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from pyramidd.errors import InputError
from pyramidd.options import BuildOptions
from pyramidd.testing import gradient, read_source
from pyramidd_template import RawFormat, TilesFormat


def raw_file(tmp_path, image):
    h, w, b = image.shape
    path = tmp_path / f"picture.{w}x{h}x{b}.raw"
    path.write_bytes(image.tobytes())
    return path


def test_source_reads_what_was_written(tmp_path):
    image = gradient(300, 200, 4)
    source = RawFormat().probe(raw_file(tmp_path, image), BuildOptions())
    np.testing.assert_array_equal(read_source(source), image)


def test_source_says_not_mine_and_broken(tmp_path, make_image):
    assert RawFormat().probe(make_image(), BuildOptions()) is None
    bad = tmp_path / "x.10x10x3.raw"
    bad.write_bytes(b"short")
    with pytest.raises(InputError, match="write the file again"):
        RawFormat().probe(bad, BuildOptions())


def test_sink_writes_every_tile_and_the_manifest(run_sink, tmp_path):
    run = run_sink(TilesFormat(), gradient(600, 300, 3), tmp_path / "pyr")
    manifest = json.loads((tmp_path / "pyr" / "manifest.json").read_text())
    assert manifest["width"] == 600
    tiles = sorted((tmp_path / "pyr").rglob("*.png"))
    assert len(tiles) == run.grid.tile_count()
    key = run.keys[0]
    stored = np.asarray(Image.open(tmp_path / "pyr" / str(key.level) / f"{key.col}_{key.row}.png"))
    np.testing.assert_array_equal(stored, run.tile(key))


def test_discovered(pyramidd_registry):
    assert ("source", "template-raw") in pyramidd_registry.entries
    assert ("sink", "template-tiles") in pyramidd_registry.entries


def test_builds_through_the_engine(tmp_path, build_pyramid):
    image = gradient(600, 300, 3)
    built = build_pyramid(raw_file(tmp_path, image), tmp_path / "out", layout="template-tiles")
    manifest = json.loads((built.output / "manifest.json").read_text())
    assert (manifest["width"], manifest["height"]) == (600, 300)
    top = manifest["levels"][1]
    tile = np.asarray(Image.open(built.output / str(top) / "0_0.png"))
    np.testing.assert_array_equal(tile, image[:256, :256])
