"""The DZI sink: file tree and descriptor as ``vips dzsave`` writes them, atomic output."""

from __future__ import annotations

import errno
import os
import pickle
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pyramidd.errors import OptionError, OutputError
from pyramidd.grid import Grid, TileKey
from pyramidd.options import BuildOptions
from pyramidd.sinks import BUILTINS
from pyramidd.sinks import staging as st
from pyramidd.sinks.dzi import DZI, descriptor, split_output
from pyramidd.sinks.staging import STAGING_MARK
from pyramidd.testing import ArraySource, check_dzi, drive_sink, gradient, write_image

VIPS = shutil.which("vips")
needs_vips = pytest.mark.skipif(VIPS is None, reason="libvips' vips command is not installed")


def tree(root: Path, skip: tuple[str, ...] = ()) -> dict[str, tuple[int, int]]:
    """Every file under ``root``: relative path -> image size ((0, 0) for other files)."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.name not in skip:
            rel = str(path.relative_to(root))
            if path.suffix in (".png", ".jpg", ".jpeg", ".webp"):
                with Image.open(path) as im:
                    out[rel] = im.size
            else:
                out[rel] = (0, 0)
    return out


def vips_dzsave(tmp_path: Path, image: np.ndarray, tile: int, overlap: int, suffix: str) -> Path:
    src = write_image(tmp_path / "in.png", image)
    out = tmp_path / "vips" / "out"
    out.parent.mkdir()
    subprocess.run(
        [VIPS, "dzsave", str(src), str(out), "--suffix", f".{suffix}",
         "--tile-size", str(tile), "--overlap", str(overlap)],
        check=True, timeout=60, capture_output=True,
    )
    return out.parent


@needs_vips
@pytest.mark.parametrize(
    "width, height, tile, overlap",
    [(1, 1, 254, 1), (7, 5, 254, 1), (254, 254, 254, 1), (255, 253, 254, 1),
     (520, 300, 254, 1), (300, 1, 256, 0), (97, 61, 16, 2), (40, 33, 8, 0)],
)
def test_same_files_and_descriptor_as_vips(tmp_path: Path, width: int, height: int, tile: int, overlap: int) -> None:
    image = gradient(width, height, 3)
    ref = vips_dzsave(tmp_path, image, tile, overlap, "png")
    ours = tmp_path / "ours"
    drive_sink(DZI, image, ours / "out", BuildOptions(suffix="png", tile_size=tile, overlap=overlap))
    assert tree(ours) == tree(ref, skip=("vips-properties.xml",))
    assert (ours / "out.dzi").read_bytes() == (ref / "out.dzi").read_bytes()


@needs_vips
@pytest.mark.parametrize("suffix", ["jpg", "jpeg", "webp"])
def test_other_formats_same_files_and_descriptor_as_vips(tmp_path: Path, suffix: str) -> None:
    image = gradient(97, 61, 3)
    ref = vips_dzsave(tmp_path, image, 16, 2, suffix)
    ours = tmp_path / "ours"
    drive_sink(DZI, image, ours / "out", BuildOptions(suffix=suffix, tile_size=16, overlap=2))
    assert tree(ours) == tree(ref, skip=("vips-properties.xml",))
    assert (ours / "out.dzi").read_bytes() == (ref / "out.dzi").read_bytes()


@needs_vips
def test_full_resolution_tiles_match_vips_pixels(tmp_path: Path) -> None:
    image = gradient(300, 270, 4)
    ref = vips_dzsave(tmp_path, image, 254, 1, "png")
    run = drive_sink(DZI, image, tmp_path / "ours" / "out", BuildOptions(suffix="png"))
    top = run.grid.top
    for key in run.grid.keys(top):
        name = f"out_files/{top}/{key.col}_{key.row}.png"
        ours = np.asarray(Image.open(tmp_path / "ours" / name))
        assert np.array_equal(ours, np.asarray(Image.open(ref / name))), key
        assert np.array_equal(ours, run.tile(key)), key


def test_descriptor_text() -> None:
    assert descriptor(Grid(7, 5, 254, 1), "png") == (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<Image xmlns="http://schemas.microsoft.com/deepzoom/2008"\n'
        '  Format="png"\n'
        '  Overlap="1"\n'
        '  TileSize="254"\n'
        "  >\n"
        "  <Size \n"
        '    Height="5"\n'
        '    Width="7"\n'
        "  />\n"
        "</Image>\n"
    )


@pytest.mark.parametrize("bands", [1, 2, 3, 4])
@pytest.mark.parametrize("suffix", ["jpg", "png", "webp"])
def test_every_band_count_and_format(tmp_path: Path, bands: int, suffix: str) -> None:
    run = drive_sink(DZI, gradient(70, 45, bands), tmp_path / "p.dzi",
                     BuildOptions(suffix=suffix, tile_size=32, overlap=1))
    grid = check_dzi(tmp_path / "p.dzi")
    assert grid == run.grid
    assert run.bytes_written == sum(p.stat().st_size for p in (tmp_path / "p_files").rglob("*.*"))
    if suffix == "png":  # lossless: every tile is the reference tile
        for key in run.keys:
            got = np.asarray(Image.open(run.sink.output.parent / "p_files" / str(key.level)
                                        / f"{key.col}_{key.row}.png"))
            assert np.array_equal(got.reshape(run.tile(key).shape), run.tile(key)), key


def test_output_names(tmp_path: Path) -> None:
    assert split_output(tmp_path / "a.dzi") == (tmp_path, "a")
    assert split_output(tmp_path / "a.DZI") == (tmp_path, "a")
    assert split_output(tmp_path / "a") == (tmp_path, "a")
    assert split_output(tmp_path / "a.b") == (tmp_path, "a.b")
    for bad in (tmp_path / ".dzi", tmp_path / "x" / "..", Path("/")):
        with pytest.raises((OptionError, OutputError)):
            split_output(bad)


def test_output_given_without_suffix(tmp_path: Path) -> None:
    run = drive_sink(DZI, gradient(10, 10), tmp_path / "pyr", BuildOptions(suffix="png"))
    assert run.sink.output == tmp_path / "pyr.dzi"
    assert sorted(os.listdir(tmp_path)) == ["pyr.dzi", "pyr_files"]


def make_sink(tmp_path: Path, image: np.ndarray, **options):
    opts = BuildOptions(suffix="png", **options)
    rules = DZI.rules(opts)
    grid = Grid(image.shape[1], image.shape[0], rules.tile_size, rules.overlap, rules.depth)
    return DZI.create(tmp_path / "out.dzi", grid, ArraySource(image), opts), grid


def test_nothing_at_output_until_finish(tmp_path: Path) -> None:
    image = gradient(30, 20)
    sink, grid = make_sink(tmp_path, image, tile_size=16)
    assert os.listdir(tmp_path) == []  # create writes nothing
    sink.start()
    for key in grid.keys(grid.top):
        x0, y0, x1, y1 = grid.tile_rect(key)
        sink.write_tile(key, image[y0:y1, x0:x1])
    names = os.listdir(tmp_path)
    assert len(names) == 1 and names[0].startswith(".out.dzi" + STAGING_MARK)
    sink.abort()
    assert os.listdir(tmp_path) == []


def test_pickled_sink_writes_in_a_worker(tmp_path: Path) -> None:
    image = gradient(20, 20)
    sink, grid = make_sink(tmp_path, image)
    sink.start()
    worker_copy = pickle.loads(pickle.dumps(sink))
    for level in grid.levels():
        for key in grid.keys(level):
            x0, y0, x1, y1 = grid.tile_rect(key)
            # any pixels of the right size will do for this test
            worker_copy.write_tile(key, np.zeros((y1 - y0, x1 - x0, 3), np.uint8))
    sink.finish()
    check_dzi(tmp_path / "out.dzi")
    assert [n for n in os.listdir(tmp_path) if STAGING_MARK in n] == []


def test_existing_output_needs_replace(tmp_path: Path) -> None:
    (tmp_path / "out_files").mkdir()
    with pytest.raises(OutputError, match="out_files already exists"):
        make_sink(tmp_path, gradient(10, 10))
    (tmp_path / "out.dzi").write_text("old")
    drive_sink(DZI, gradient(10, 10), tmp_path / "out.dzi", BuildOptions(suffix="png", extra={"replace": True}))
    check_dzi(tmp_path / "out.dzi")
    assert sorted(os.listdir(tmp_path)) == ["out.dzi", "out_files"]


def test_disk_full_while_writing_a_tile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    image = gradient(10, 10)
    sink, grid = make_sink(tmp_path, image)
    sink.start()

    def full(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(st.os, "write", full)
    key = TileKey(grid.top, 0, 0)
    with pytest.raises(OutputError, match=r"disk full while writing .*0_0\.png"):
        sink.write_tile(key, image)
    sink.abort()
    assert os.listdir(tmp_path) == []


def test_wrong_tile_shape_is_a_bug(tmp_path: Path) -> None:
    sink, grid = make_sink(tmp_path, gradient(10, 10))
    with pytest.raises(ValueError, match="must be 10x10"):
        sink.write_tile(TileKey(grid.top, 0, 0), np.zeros((9, 10, 3), np.uint8))


def test_rules() -> None:
    r = DZI.rules(BuildOptions())
    assert (r.tile_size, r.overlap, r.depth, r.flip_y) == (254, 1, "onepixel", False)
    r = DZI.rules(BuildOptions(tile_size=510, overlap=2))
    assert (r.tile_size, r.overlap) == (510, 2)
    assert DZI.rules(BuildOptions(overlap=0)).overlap == 0
    with pytest.raises(OptionError, match="overlap"):
        DZI.rules(BuildOptions(tile_size=1))  # the default overlap 1 does not fit
    with pytest.raises(OptionError, match="overlap"):
        DZI.rules(BuildOptions(tile_size=8, overlap=8))


def test_builtins_are_registered() -> None:
    from pyramidd.plugins import load

    assert [f.name for f in BUILTINS] == ["dzi", "tms", "xyz"]
    registry = load().registry
    for fmt in BUILTINS:
        assert registry.sink(fmt.name) is fmt


def test_tile_paths_are_strings(tmp_path: Path) -> None:
    # pathlib interns every part of a path, and each tile's name is new: a Path per tile
    # grew every worker's table of interned strings with the pyramid.
    sink, grid = make_sink(tmp_path, gradient(30, 20), tile_size=16)
    path = sink.tile_path(TileKey(grid.top, 1, 0))
    assert type(path) is str
    assert path == os.path.join(sink.staging.new, "out_files", str(grid.top), "1_0.png")
