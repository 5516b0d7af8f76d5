"""Parity with the reference tools, run on the same input in the same test:
``vips dzsave`` for Deep Zoom and ``gdal2tiles.py -p raster`` for TMS."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pyramidd.engine import build_sync
from pyramidd.options import BuildOptions

vips = shutil.which("vips")
gdal2tiles = shutil.which("gdal2tiles.py") or shutil.which("gdal2tiles")


def textured(w: int, h: int, bands: int, seed: int) -> np.ndarray:
    """Smooth gradients plus noise: box averages are exercised at every level."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = [(x * 255 // max(1, w - 1)), (y * 255 // max(1, h - 1)), ((x ^ y) & 255)]
    planes = [(b + rng.integers(0, 40, (h, w))) % 256 for b in (base * 2)[:bands]]
    return np.stack(planes, -1).astype(np.uint8).squeeze()


def tree(folder: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for f in folder.rglob("*.png"):
        if f.name == "blank.png":
            continue
        with Image.open(f) as im:
            out[str(f.relative_to(folder))] = im.size
    return out


@pytest.mark.skipif(vips is None, reason="vips is not installed (scripts/setup installs libvips-tools)")
@pytest.mark.parametrize("w,h,bands,tile,overlap", [
    (1537, 919, 3, 254, 1), (600, 2111, 1, 256, 0), (1025, 1023, 4, 510, 2), (3, 700, 2, 254, 1),
])
def test_dzi_matches_vips_dzsave(tmp_path, w, h, bands, tile, overlap):
    src = tmp_path / "in.png"
    Image.fromarray(textured(w, h, bands, w)).save(src)
    subprocess.run([vips, "dzsave", str(src), str(tmp_path / "vips"), "--suffix", ".png",
                    "--tile-size", str(tile), "--overlap", str(overlap)], check=True)
    build_sync(src, tmp_path / "ours", BuildOptions(tile_size=tile, overlap=overlap, suffix="png", workers=2))
    ours, theirs = tree(tmp_path / "ours_files"), tree(tmp_path / "vips_files")
    assert ours == theirs  # same files, same tile sizes
    assert (tmp_path / "ours.dzi").read_text() == (tmp_path / "vips.dzi").read_text()
    worst = 0
    for name in ours:
        a = np.asarray(Image.open(tmp_path / "ours_files" / name), dtype=int)
        b = np.asarray(Image.open(tmp_path / "vips_files" / name), dtype=int)
        assert a.shape == b.shape, name
        worst = max(worst, int(np.abs(a - b).max()))
    assert worst <= 1


@pytest.mark.skipif(gdal2tiles is None, reason="gdal2tiles is not installed (scripts/setup installs gdal-bin)")
@pytest.mark.parametrize("w,h", [(1000, 600), (257, 1300), (256, 256)])
def test_tms_file_tree_matches_gdal2tiles(tmp_path, w, h):
    src = tmp_path / "in.png"
    Image.fromarray(textured(w, h, 3, h)).save(src)
    subprocess.run([gdal2tiles, "-q", "-p", "raster", "-w", "none", str(src), str(tmp_path / "g2t")],
                   check=True, capture_output=True)
    build_sync(src, tmp_path / "ours", BuildOptions(layout="tms", suffix="png", workers=2))
    assert tree(tmp_path / "ours") == tree(tmp_path / "g2t")
    theirs = (tmp_path / "g2t" / "tilemapresource.xml").read_text()
    assert (tmp_path / "ours" / "tilemapresource.xml").read_text() == theirs
    # full-resolution tiles carry the same pixels (gdal2tiles resamples its lower zooms
    # with GDAL's own filter, so only the top zoom is a pixel reference)
    top = max(int(p.name) for p in (tmp_path / "g2t").iterdir() if p.name.isdigit())
    for f in (tmp_path / "g2t" / str(top)).rglob("*.png"):
        rel = f.relative_to(tmp_path / "g2t")
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "ours" / rel)),
                                      np.asarray(Image.open(f)), err_msg=str(rel))
