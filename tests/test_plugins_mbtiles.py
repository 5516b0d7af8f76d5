"""The MBTiles plugin of plugins/pyramidd-mbtiles, installed as any third party's:
found through its entry point, and building through the real ``pyramidd build``."""

from __future__ import annotations

import io
import sqlite3
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from pyramidd.grid import Grid
from pyramidd.testing import gradient, write_image

pytest.importorskip("pyramidd_mbtiles", reason="plugins/pyramidd-mbtiles is not installed (scripts/setup)")


def pyramidd(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pyramidd.cli", *args], capture_output=True,
                          text=True, timeout=120, check=check)


def test_discovered_through_its_entry_point():
    listed = pyramidd("plugins").stdout
    assert "mbtiles (pyramidd_mbtiles)\n    sink mbtiles" in listed


def test_pyramidd_build_writes_an_mbtiles_file(tmp_path):
    image = gradient(700, 400, 3)
    source = write_image(tmp_path / "in.png", image)
    result = pyramidd("build", str(source), str(tmp_path / "out" / "map"), "--layout", "mbtiles",
                      "--suffix", "png", "--workers", "2")
    assert "map.mbtiles" in result.stdout + result.stderr
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["map.mbtiles"], "no staging left behind"
    grid = Grid(700, 400, 256, 0, "onetile")
    with sqlite3.connect(out / "map.mbtiles") as db:
        meta = dict(db.execute("SELECT name, value FROM metadata"))
        rows = {(z, x, y): data for z, x, y, data in db.execute("SELECT * FROM tiles")}
    assert meta["format"] == "png" and meta["maxzoom"] == str(grid.top - grid.min_level)
    assert len(rows) == grid.tile_count()
    full = grid.top - grid.min_level
    # TMS order: row 0 is the bottom strip of the image, the right way up.
    bottom_left = np.asarray(Image.open(io.BytesIO(rows[(full, 0, 0)])).convert("RGB"))
    np.testing.assert_array_equal(bottom_left, image[400 - 256 :, :256])
    top_right = np.asarray(Image.open(io.BytesIO(rows[(full, 2, 1)])))
    # 700 = 2*256 + 188 columns, 400 = 256 + 144 rows: data at the bottom left of the tile.
    np.testing.assert_array_equal(top_right[256 - 144 :, :188, :3], image[:144, 512:])
    assert (top_right[: 256 - 144, :, 3] == 0).all()


def test_overlap_is_refused_in_one_line(tmp_path):
    source = write_image(tmp_path / "in.png", gradient(300, 200))
    result = pyramidd("build", str(source), str(tmp_path / "map"), "--layout", "mbtiles",
                      "--overlap", "1", check=False)
    assert result.returncode != 0
    assert "drop --overlap" in result.stderr and "Traceback" not in result.stderr
    assert not list(tmp_path.glob("map*"))
