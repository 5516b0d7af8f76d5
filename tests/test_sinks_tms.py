"""The TMS sink: tiles, padding and tilemapresource.xml as ``gdal2tiles.py -p raster`` writes them."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pyramidd.errors import OptionError, OutputError
from pyramidd.grid import Grid
from pyramidd.options import BuildOptions
from pyramidd.sinks.tms import DESCRIPTOR_NAME, TMS, tilemapresource
from pyramidd.testing import ArraySource, check_zxy, drive_sink, gradient, write_image

GDAL2TILES = shutil.which("gdal2tiles.py") or shutil.which("gdal2tiles")
needs_gdal2tiles = pytest.mark.skipif(GDAL2TILES is None, reason="GDAL's gdal2tiles is not installed")


def tiles(root: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for path in sorted(root.glob("*/*/*.png")):
        with Image.open(path) as im:
            out[str(path.relative_to(root))] = im.size
    return out


def gdal2tiles(tmp_path: Path, image: np.ndarray) -> Path:
    src = write_image(tmp_path / "in.png", image)
    out = tmp_path / "gdal"
    subprocess.run(
        [GDAL2TILES, "-p", "raster", "-q", "--processes=1", "--webviewer=none", str(src), str(out)],
        check=True, timeout=120, capture_output=True,
    )
    return out


@needs_gdal2tiles
@pytest.mark.parametrize("width, height", [(7, 5), (256, 256), (257, 100), (520, 300), (100, 700)])
def test_same_tiles_and_descriptor_as_gdal2tiles(tmp_path: Path, width: int, height: int) -> None:
    image = gradient(width, height, 3)
    ref = gdal2tiles(tmp_path, image)
    run = drive_sink(TMS, image, tmp_path / "t",
                     BuildOptions(layout="tms", suffix="png", extra={"title": "in.png"}))
    assert tiles(tmp_path / "t") == tiles(ref)
    assert (tmp_path / "t" / DESCRIPTOR_NAME).read_bytes() == (ref / DESCRIPTOR_NAME).read_bytes()
    # At full resolution gdal2tiles copies pixels: every tile must be the same, padding included.
    z = run.grid.top - run.grid.min_level
    for path in sorted((ref / str(z)).glob("*/*.png")):
        rel = path.relative_to(ref)
        ours = np.asarray(Image.open(tmp_path / "t" / rel))
        assert np.array_equal(ours, np.asarray(Image.open(path))), rel


def test_partial_row_is_the_top_one_with_data_at_the_bottom(tmp_path: Path) -> None:
    image = gradient(300, 300, 3)
    drive_sink(TMS, image, tmp_path / "t", BuildOptions(layout="tms", suffix="png"))
    # y counts from the bottom: row 0 holds the bottom 256 rows, row 1 the top 44.
    bottom = np.asarray(Image.open(tmp_path / "t" / "1" / "0" / "0.png"))
    assert np.array_equal(bottom[..., :3], image[44:, :256]) and np.all(bottom[..., 3] == 255)
    top_right = np.asarray(Image.open(tmp_path / "t" / "1" / "1" / "1.png"))
    assert top_right.shape == (256, 256, 4)
    assert np.array_equal(top_right[212:, :44, :3], image[:44, 256:])
    assert np.all(top_right[212:, :44, 3] == 255)
    assert np.all(top_right[:212] == 0) and np.all(top_right[:, 44:] == 0)


def test_jpeg_pads_with_background(tmp_path: Path) -> None:
    drive_sink(TMS, gradient(100, 60, 3), tmp_path / "t",
               BuildOptions(layout="tms", suffix="jpg", quality=95, background=(255, 0, 0, 255)))
    tile = np.asarray(Image.open(tmp_path / "t" / "0" / "0" / "0.jpg")).astype(int)
    assert tile.shape == (256, 256, 3)
    assert np.abs(tile[:190] - [255, 0, 0]).max() <= 6  # padding above the data
    assert np.abs(tile[:, 110:] - [255, 0, 0]).max() <= 6
    text = (tmp_path / "t" / DESCRIPTOR_NAME).read_text()
    assert 'mime-type="image/jpg" extension="jpg"' in text  # as gdal2tiles writes it


@pytest.mark.parametrize("bands", [1, 2, 4])
def test_band_counts(tmp_path: Path, bands: int) -> None:
    run = drive_sink(TMS, gradient(50, 40, bands), tmp_path / "t",
                     BuildOptions(layout="tms", suffix="png", tile_size=16))
    check_zxy(tmp_path / "t", run.grid, "png")
    with Image.open(tmp_path / "t" / "0" / "0" / "0.png") as im:
        assert im.mode == ("LA" if bands <= 2 else "RGBA")


def test_descriptor_text_and_title() -> None:
    grid = Grid(520, 300, 256, depth="onetile")
    text = tilemapresource(grid, "png", 'a "b" & <c>')
    assert "<Title>a &quot;b&quot; &amp; &lt;c&gt;</Title>" in text
    assert '<BoundingBox minx="0.00000000000000" miny="-300.00000000000000" maxx="520.00000000000000"' in text
    assert text.count("<TileSet ") == 3
    assert '<TileSet href="0" units-per-pixel="4.00000000000000" order="0"/>' in text
    assert text.endswith("      </TileSets>\n    </TileMap>\n    ")


def test_title_defaults(tmp_path: Path) -> None:
    grid = Grid(10, 10, 256, depth="onetile")
    source = ArraySource(gradient(10, 10))
    assert TMS.create(tmp_path / "t", grid, source, BuildOptions(layout="tms")).title == "t"
    source.path = tmp_path / "scan.tif"  # type: ignore[attr-defined]
    assert TMS.create(tmp_path / "t", grid, source, BuildOptions(layout="tms")).title == "scan.tif"


def test_descriptor_written_last(tmp_path: Path) -> None:
    image = gradient(20, 20)
    opts = BuildOptions(layout="tms", suffix="png")
    rules = TMS.rules(opts)
    grid = Grid(20, 20, rules.tile_size, rules.overlap, rules.depth)
    sink = TMS.create(tmp_path / "t", grid, ArraySource(image), opts)
    sink.start()
    sink.write_tile(grid.keys(grid.top).__next__(), image)
    assert not (sink.root / DESCRIPTOR_NAME).exists() and not (tmp_path / "t").exists()
    sink.finish()
    assert sorted(os.listdir(tmp_path / "t")) == ["0", DESCRIPTOR_NAME]


def test_rules() -> None:
    r = TMS.rules(BuildOptions(layout="tms"))
    assert (r.tile_size, r.overlap, r.depth, r.flip_y) == (256, 0, "onetile", True)
    assert TMS.rules(BuildOptions(layout="tms", tile_size=512)).tile_size == 512
    with pytest.raises(OptionError, match="tms tiles cannot overlap"):
        TMS.rules(BuildOptions(layout="tms", overlap=2))


def test_existing_output_needs_replace(tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    with pytest.raises(OutputError, match="already exists"):
        drive_sink(TMS, gradient(10, 10), tmp_path / "t", BuildOptions(layout="tms"))
    drive_sink(TMS, gradient(10, 10), tmp_path / "t", BuildOptions(layout="tms", extra={"replace": True}))
    assert sorted(os.listdir(tmp_path / "t")) == ["0", DESCRIPTOR_NAME]
