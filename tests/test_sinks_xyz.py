"""The XYZ sink: ``z/x/y`` tiles from the top-left, padded to full size, atomic output."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pyramidd.errors import OptionError, OutputError
from pyramidd.options import BuildOptions
from pyramidd.sinks.encode import flatten
from pyramidd.sinks.xyz import XYZ
from pyramidd.testing import check_zxy, drive_sink, gradient, write_image

VIPS = shutil.which("vips")
needs_vips = pytest.mark.skipif(VIPS is None, reason="libvips' vips command is not installed")


def zxy_tree(root: Path, order: str = "zxy") -> dict[tuple[int, int, int], tuple[int, int]]:
    """``(z, x, y) -> tile size`` of a tree written as ``z/x/y`` or (vips google) ``z/y/x``."""
    out = {}
    for path in root.glob("*/*/*.*"):
        a, b, c = int(path.parent.parent.name), int(path.parent.name), int(path.stem)
        z, x, y = (a, b, c) if order == "zxy" else (a, c, b)
        with Image.open(path) as im:
            out[(z, x, y)] = im.size
    return out


@needs_vips
@pytest.mark.parametrize("width, height", [(7, 5), (256, 256), (257, 100), (520, 300), (90, 1000)])
def test_same_tiles_as_vips_google_layout(tmp_path: Path, width: int, height: int) -> None:
    image = gradient(width, height, 3)
    src = write_image(tmp_path / "in.png", image)
    subprocess.run([VIPS, "dzsave", str(src), str(tmp_path / "g"), "--layout", "google",
                    "--suffix", ".png"], check=True, timeout=60, capture_output=True)
    run = drive_sink(XYZ, image, tmp_path / "x", BuildOptions(layout="xyz", suffix="png"))
    assert zxy_tree(tmp_path / "x") == zxy_tree(tmp_path / "g", order="zyx")
    check_zxy(tmp_path / "x", run.grid, "png")
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == [
        str(z) for z in sorted(range(run.grid.top - run.grid.min_level + 1), key=str)
    ]  # zoom folders only: XYZ has no descriptor


def test_edge_tiles_padded_transparent_for_png(tmp_path: Path) -> None:
    image = gradient(300, 270, 3)
    run = drive_sink(XYZ, image, tmp_path / "x", BuildOptions(layout="xyz", suffix="png"))
    z = run.grid.top - run.grid.min_level
    assert z == 1
    corner = np.asarray(Image.open(tmp_path / "x" / "1" / "1" / "1.png"))
    assert corner.shape == (256, 256, 4)  # alpha added to an RGB image
    assert np.array_equal(corner[:14, :44, :3], image[256:, 256:])  # data at the top-left
    assert np.all(corner[:14, :44, 3] == 255)
    assert np.all(corner[14:] == 0) and np.all(corner[:, 44:] == 0)
    full = np.asarray(Image.open(tmp_path / "x" / "1" / "0" / "0.png"))
    assert np.array_equal(full[..., :3], image[:256, :256]) and np.all(full[..., 3] == 255)
    # zoom 0: the whole image halved, in one padded tile
    top = np.asarray(Image.open(tmp_path / "x" / "0" / "0" / "0.png"))
    assert np.array_equal(top[:135, :150, :3], run.levels[run.grid.min_level][..., :3])
    assert np.all(top[135:, :, 3] == 0) and np.all(top[:, 150:, 3] == 0)


def test_edge_tiles_padded_with_background_for_jpeg(tmp_path: Path) -> None:
    image = gradient(300, 20, 4)  # alpha, flattened onto the background
    drive_sink(XYZ, image, tmp_path / "x",
               BuildOptions(layout="xyz", suffix="jpg", quality=95, background=(0, 128, 255, 255)))
    tile = np.asarray(Image.open(tmp_path / "x" / "1" / "1" / "0.jpg")).astype(int)
    assert tile.shape == (256, 256, 3)
    assert np.abs(tile[40:, :] - [0, 128, 255]).max() <= 4
    assert np.abs(tile[:, 80:] - [0, 128, 255]).max() <= 4
    expected = flatten(image[:, 256:], (0, 128, 255, 255)).astype(int)
    assert np.abs(tile[:16, :40] - expected[:16, :40]).mean() < 4


@pytest.mark.parametrize("bands", [1, 2, 3, 4])
@pytest.mark.parametrize("suffix", ["png", "webp", "jpg"])
def test_every_band_count_and_format(tmp_path: Path, bands: int, suffix: str) -> None:
    run = drive_sink(XYZ, gradient(40, 70, bands), tmp_path / "x",
                     BuildOptions(layout="xyz", suffix=suffix, tile_size=32))
    check_zxy(tmp_path / "x", run.grid, suffix)


def test_tile_size_override(tmp_path: Path) -> None:
    run = drive_sink(XYZ, gradient(600, 100), tmp_path / "x", BuildOptions(layout="xyz", suffix="png", tile_size=512))
    assert run.grid.tile_size == 512
    assert zxy_tree(tmp_path / "x") == {(0, 0, 0): (512, 512), (1, 0, 0): (512, 512), (1, 1, 0): (512, 512)}


def test_rules() -> None:
    r = XYZ.rules(BuildOptions(layout="xyz"))
    assert (r.tile_size, r.overlap, r.depth, r.flip_y) == (256, 0, "onetile", False)
    assert XYZ.rules(BuildOptions(layout="xyz", overlap=0)).overlap == 0
    with pytest.raises(OptionError, match="cannot overlap"):
        XYZ.rules(BuildOptions(layout="xyz", overlap=1))


def test_existing_output_and_replace(tmp_path: Path) -> None:
    out = tmp_path / "x"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(OutputError, match="already exists"):
        drive_sink(XYZ, gradient(10, 10), out, BuildOptions(layout="xyz"))
    assert os.listdir(out) == ["old.txt"]
    drive_sink(XYZ, gradient(10, 10), out, BuildOptions(layout="xyz", extra={"replace": True}))
    assert sorted(os.listdir(out)) == ["0"]
    assert os.listdir(tmp_path) == ["x"]  # no staging left behind


def test_names_cannot_escape(tmp_path: Path) -> None:
    for bad in (tmp_path / "..", Path("/")):
        with pytest.raises(OutputError):
            drive_sink(XYZ, gradient(4, 4), bad, BuildOptions(layout="xyz"))


def test_tile_paths_are_strings(tmp_path: Path) -> None:
    # As the DZI sink's (tests/test_sinks_dzi.py): no pathlib object per tile.
    from pyramidd.grid import Grid, TileKey
    from pyramidd.testing import ArraySource

    image = gradient(300, 200)
    opts = BuildOptions(suffix="png")
    rules = XYZ.rules(opts)
    grid = Grid(300, 200, rules.tile_size, rules.overlap, rules.depth)
    sink = XYZ.create(tmp_path / "tiles", grid, ArraySource(image), opts)
    path = sink.tile_path(TileKey(grid.top, 1, 0))
    assert type(path) is str
    zoom = grid.top - grid.min_level
    assert path == os.path.join(sink.staging.new, "tiles", str(zoom), "1", "0.png")
