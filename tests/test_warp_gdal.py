"""Agreement with GDAL: gdalwarp -order N on the same GCPs and the same output grid."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tifffile

from pyramidd import plugins
from pyramidd.morton import z_order
from pyramidd.options import BuildOptions
from pyramidd.warp.source import WarpSource

pytestmark = pytest.mark.skipif(shutil.which("gdalwarp") is None, reason="GDAL not installed")

W, H = 300, 200


def textured() -> np.ndarray:
    """Gradients, waves and noise: every kernel weight shows in the result."""
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:H, 0:W]
    bands = [
        (xx * 7 + yy * 3) % 256,
        np.sin(xx / 9.0) * 100 + np.cos(yy / 7.0) * 100 + 128,
        rng.integers(0, 256, (H, W)),
    ]
    return np.stack(bands, -1).clip(0, 255).astype(np.uint8)


def gcps(order: int) -> list[tuple[float, float, float, float]]:
    """A 30° rotation at 2 map units per pixel (bent for order 2), with noise.

    Values are rounded to what a GDAL VRT stores (4 decimals of pixel/line, 12
    significant digits of x/y) so both sides fit the very same numbers.
    """
    rng = np.random.default_rng(10 + order)
    n = 12
    px, ln = rng.uniform(0, W, n), rng.uniform(0, H, n)
    th = np.radians(30)
    x = 500000 + 2.0 * (px * np.cos(th) - ln * np.sin(th)) + rng.normal(0, 0.3, n)
    y = 4000000 - 2.0 * (px * np.sin(th) + ln * np.cos(th)) + rng.normal(0, 0.3, n)
    if order > 1:
        x += 0.002 * px * px
        y += 0.003 * px * ln
    return [
        (round(float(a), 4), round(float(b), 4), round(float(c), 3), round(float(d), 3))
        for a, b, c, d in zip(px, ln, x, y)
    ]


def write_points(path: Path, points: list[tuple[float, float, float, float]]) -> None:
    """A QGIS georeferencer sidecar (sourceY negative, as QGIS writes it)."""
    lines = ["#CRS: ", "mapX,mapY,sourceX,sourceY,enable,dX,dY,residual"]
    lines += [f"{x!r},{y!r},{p!r},{-line!r},1,0,0,0" for p, line, x, y in points]
    path.write_text("\n".join(lines) + "\n")


def read_tiled(source: WarpSource, tile: int = 64) -> np.ndarray:
    """The whole output, read tile by tile in Z order as the engine reads it."""
    reader = source.open()
    out = np.zeros((source.height, source.width, source.bands), np.uint8)
    cells = [(i, j) for j in range(-(-source.height // tile)) for i in range(-(-source.width // tile))]
    for i, j in z_order(cells):
        x, y = i * tile, j * tile
        w, h = min(tile, source.width - x), min(tile, source.height - y)
        out[y : y + h, x : x + w] = reader.read_region(x, y, w, h)
    reader.close()
    return out


def gdalwarp(tmp: Path, src: Path, points, source: WarpSource, order: int, kernel: str) -> np.ndarray:  # type: ignore[no-untyped-def]
    vrt, out = tmp / "gcps.vrt", tmp / f"gdal_{order}_{kernel}.tif"
    args = ["gdal_translate", "-q", "-of", "VRT"]
    for p in points:
        args += ["-gcp", *(repr(v) for v in p)]
    subprocess.run([*args, str(src), str(vrt)], check=True, timeout=60)
    subprocess.run(
        [
            "gdalwarp", "-q", "-overwrite", "-et", "0", "-wo", "XSCALE=1", "-wo", "YSCALE=1",
            "-order", str(order), "-r", kernel, "-dstalpha", *source.grid.gdalwarp_args(),
            str(vrt), str(out),
        ],
        check=True,
        timeout=120,
    )
    return tifffile.imread(out)


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("kernel", ["near", "bilinear", "cubic"])
def test_pixels_match_gdalwarp(tmp_path: Path, order: int, kernel: str) -> None:
    src = tmp_path / "map.tif"
    tifffile.imwrite(src, textured(), tile=(64, 64))
    points = gcps(order)
    write_points(tmp_path / "map.tif.points", points)
    # gdalwarp -dstalpha: an alpha band, which PNG tiles keep
    options = BuildOptions(suffix="png", extra={"warp": {"order": order, "resampler": kernel}})
    source = plugins.load().registry.probe(src, options)
    assert isinstance(source, WarpSource)
    mine = read_tiled(source)
    ref = gdalwarp(tmp_path, src, points, source, order, kernel)
    assert ref.shape == mine.shape
    diff = np.abs(ref.astype(np.int16) - mine.astype(np.int16)).max(axis=-1)
    assert diff.max() <= 1
    assert (diff == 0).mean() >= 0.9999
    assert (ref[..., 3] > 0).sum() > 0.4 * mine.shape[0] * mine.shape[1]  # not vacuous


def test_vrt_with_gcps_is_warped_like_gdalwarp(tmp_path: Path) -> None:
    src = tmp_path / "map.tif"
    tifffile.imwrite(src, textured())
    points = gcps(2)
    args = ["gdal_translate", "-q", "-of", "VRT"]
    for p in points:
        args += ["-gcp", *(repr(v) for v in p)]
    subprocess.run([*args, str(src), str(tmp_path / "map.vrt")], check=True, timeout=60)
    source = plugins.load().registry.probe(tmp_path / "map.vrt", BuildOptions(suffix="png"))
    assert isinstance(source, WarpSource) and source.model.order == 2  # GDAL's default for 12
    assert Path(source.input_path) == src
    mine = read_tiled(source, tile=100)
    ref = gdalwarp(tmp_path, src, points, source, 2, "near")
    assert np.array_equal(mine, ref)


def embed_gcps(tmp: Path, points, raster_type: str, srs: str | None = None) -> Path:  # type: ignore[no-untyped-def]
    """A GeoTIFF holding ``points`` as tiepoints, written by ``gdal_translate -gcp``."""
    src, out = tmp / "plain.tif", tmp / f"embedded_{raster_type}.tif"
    tifffile.imwrite(src, textured())
    args = ["gdal_translate", "-q", "-mo", f"AREA_OR_POINT={raster_type}"]
    if srs:
        args += ["-a_srs", srs]
    for p in points:
        args += ["-gcp", *(repr(v) for v in p)]
    subprocess.run([*args, str(src), str(out)], check=True, timeout=60)
    src.unlink()
    return out


@pytest.mark.parametrize("raster_type", ["Area", "Point"])
def test_gcps_embedded_in_a_geotiff_read_as_gdalinfo_reports_them(tmp_path: Path, raster_type: str) -> None:
    import json

    from pyramidd.warp.geotiff import read_geotiff_gcps

    path = embed_gcps(tmp_path, gcps(2), raster_type, srs="EPSG:32633")
    info = json.loads(subprocess.run(["gdalinfo", "-json", str(path)], check=True, timeout=60,
                                     capture_output=True, text=True).stdout)
    theirs = info["gcps"]["gcpList"]
    found = read_geotiff_gcps(path)
    assert found is not None and len(found.gcps) == len(theirs) == 12
    for mine, ref in zip(found.gcps, theirs):
        assert mine.id == ref["id"]
        assert (mine.pixel, mine.line, mine.x, mine.y) == pytest.approx(
            (ref["pixel"], ref["line"], ref["x"], ref["y"]), rel=1e-12, abs=1e-9)
    assert found.crs == "EPSG:32633"


@pytest.mark.parametrize("raster_type", ["Area", "Point"])
def test_a_geotiff_with_embedded_gcps_is_warped_like_gdalwarp(tmp_path: Path, raster_type: str) -> None:
    path = embed_gcps(tmp_path, gcps(2), raster_type)
    assert not list(tmp_path.glob("*.points")) and not list(tmp_path.glob("*.aux.xml"))
    source = plugins.load().registry.probe(path, BuildOptions(suffix="png"))
    assert isinstance(source, WarpSource) and source.model.order == 2  # GDAL's default for 12
    mine = read_tiled(source, tile=100)
    out = tmp_path / "gdal.tif"
    subprocess.run(
        ["gdalwarp", "-q", "-overwrite", "-et", "0", "-wo", "XSCALE=1", "-wo", "YSCALE=1",
         "-order", "2", "-r", "near", "-dstalpha", *source.grid.gdalwarp_args(), str(path), str(out)],
        check=True, timeout=120,
    )
    ref = tifffile.imread(out)
    assert np.array_equal(mine, ref)
    assert (ref[..., 3] > 0).sum() > 0.4 * mine.shape[0] * mine.shape[1]  # not vacuous
