"""Tests of the MBTiles sink, driven in-process by pyramidd's pytest plugin."""

from __future__ import annotations

import io
import pickle
import sqlite3

import numpy as np
import pytest
from PIL import Image

from pyramidd.errors import OptionError
from pyramidd.grid import TileKey
from pyramidd.testing import gradient
from pyramidd_mbtiles import MBTilesFormat
from pyramidd_mbtiles.sink import target_path


def tiles(path):
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT zoom_level, tile_column, tile_row, tile_data FROM tiles")
        return {(z, x, y): Image.open(io.BytesIO(data)) for z, x, y, data in rows}


def metadata(path):
    with sqlite3.connect(path) as db:
        return dict(db.execute("SELECT name, value FROM metadata"))


def test_every_tile_is_stored_once_in_tms_order(run_sink, tmp_path):
    image = gradient(600, 300, 3)
    run = run_sink(MBTilesFormat(), image, tmp_path / "map", suffix="png")
    stored = tiles(tmp_path / "map.mbtiles")
    grid = run.grid
    assert len(stored) == grid.tile_count() == len(run.keys)
    # 600x300 with 256 tiles: zoom 0 is the level that fits one tile (300x150).
    assert grid.top - grid.min_level == 2
    assert {z for z, _, _ in stored} == {0, 1, 2}
    # Zoom 2 is the full image: 3 columns x 2 rows; row 0 is the bottom strip.
    bottom_left = np.asarray(stored[(2, 0, 0)].convert("RGB"))
    np.testing.assert_array_equal(bottom_left, image[300 - 256 :, :256])
    top_left = np.asarray(stored[(2, 0, 1)])
    assert top_left.shape == (256, 256, 4)
    # The top strip is 44 rows of image at the bottom of the tile, transparent above.
    np.testing.assert_array_equal(top_left[256 - 44 :, :, :3], image[:44, :256])
    assert (top_left[: 256 - 44, :, 3] == 0).all()
    assert (top_left[256 - 44 :, :, 3] == 255).all()


def test_metadata_follows_the_specification(run_sink, tmp_path):
    run_sink(MBTilesFormat(), gradient(600, 300, 3), tmp_path / "map", description="a test")
    meta = metadata(tmp_path / "map.mbtiles")
    assert meta["name"] == "map"
    assert meta["format"] == "jpg"
    assert (meta["minzoom"], meta["maxzoom"]) == ("0", "2")
    assert (meta["width"], meta["height"], meta["tile_size"]) == ("600", "300", "256")
    assert meta["description"] == "a test"


def test_jpeg_edge_tiles_are_padded_with_the_background(run_sink, tmp_path):
    run_sink(MBTilesFormat(), gradient(100, 60, 4), tmp_path / "a.mbtiles",
             background=(0, 0, 255, 255))
    (only,) = tiles(tmp_path / "a.mbtiles").values()
    assert only.size == (256, 256) and only.mode == "RGB"
    r, g, b = only.getpixel((200, 10))
    assert b > 200 and r < 30 and g < 30


def test_staging_is_gone_and_nothing_else_written(run_sink, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    run_sink(MBTilesFormat(), output=out / "x")
    assert sorted(p.name for p in out.iterdir()) == ["x.mbtiles"]


def test_abort_leaves_nothing(tmp_path):
    fmt = MBTilesFormat()
    from pyramidd.grid import Grid
    from pyramidd.options import BuildOptions
    from pyramidd.testing import ArraySource

    image = gradient(300, 300, 3)
    options = BuildOptions(layout="mbtiles")
    rules = fmt.rules(options)
    grid = Grid(300, 300, rules.tile_size, 0, rules.depth)
    sink = fmt.create(tmp_path / "x", grid, ArraySource(image), options)
    sink.start()
    sink.write_tile(TileKey(grid.top, 0, 0), image[:256, :256])
    sink.abort()
    assert list(tmp_path.iterdir()) == []


def test_missing_tiles_fail_the_build_instead_of_a_partial_file(tmp_path):
    from pyramidd.errors import OutputError
    from pyramidd.grid import Grid
    from pyramidd.options import BuildOptions
    from pyramidd.testing import ArraySource

    fmt = MBTilesFormat()
    grid = Grid(300, 300, 256, 0, "onetile")
    sink = fmt.create(tmp_path / "x", grid, ArraySource(gradient(300, 300)), BuildOptions())
    sink.start()
    with pytest.raises(OutputError, match="interrupted"):
        sink.finish()
    sink.abort()
    assert not target_path(tmp_path / "x").exists()


def test_sink_pickles_without_its_connection(tmp_path):
    from pyramidd.grid import Grid
    from pyramidd.options import BuildOptions
    from pyramidd.testing import ArraySource

    grid = Grid(300, 300, 256, 0, "onetile")
    sink = MBTilesFormat().create(tmp_path / "x", grid, ArraySource(gradient(300, 300)),
                                  BuildOptions())
    sink.start()
    sink.write_tile(TileKey(grid.top, 1, 1), gradient(44, 44))
    clone = pickle.loads(pickle.dumps(sink))
    assert clone._part is None and clone.output == sink.output
    sink.abort()


def test_overlap_is_refused_with_advice():
    from pyramidd.options import BuildOptions

    with pytest.raises(OptionError, match="drop --overlap"):
        MBTilesFormat().rules(BuildOptions(overlap=1))


def test_registered_through_the_entry_point(pyramidd_registry):
    entry = pyramidd_registry.entries[("sink", "mbtiles")]
    assert entry.plugin == "mbtiles"


def test_target_name():
    from pathlib import Path

    assert target_path(Path("a/b")) == Path("a/b.mbtiles")
    assert target_path(Path("a/b.mbtiles")) == Path("a/b.mbtiles")
