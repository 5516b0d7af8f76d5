"""GCPs embedded in a GeoTIFF (tiepoints), and where they stand among sidecars.

Agreement with GDAL's reading of the same files is in ``test_warp_gdal.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from pyramidd import plugins
from pyramidd.options import BuildOptions
from pyramidd.warp.gcps import GCP
from pyramidd.warp.geotiff import crs_name, geo_keys, read_geotiff_gcps, tiepoint_gcps
from pyramidd.warp.source import WarpSource

IMG = np.random.default_rng(2).integers(0, 256, (80, 120, 3), dtype=np.uint8)
#: Four tiepoints of a 30° rotation at 2 map units per pixel.
TIEPOINTS = [
    (px, ln, 1000 + 2 * (px * 0.8660254 - ln * 0.5), 5000 - 2 * (px * 0.5 + ln * 0.8660254))
    for px, ln in [(0, 0), (120, 0), (0, 80), (120, 80)]
]


def geotiff(path: Path, tiepoints=TIEPOINTS, keys=(), scale=False) -> Path:  # type: ignore[no-untyped-def]
    """A TIFF with a ModelTiepointTag (and the given short GeoKeys, and a pixel scale)."""
    flat = [v for px, ln, x, y in tiepoints for v in (px, ln, 0.0, x, y, 0.0)]
    directory = [1, 1, 0, len(keys)] + [v for key, value in keys for v in (key, 0, 1, value)]
    tags = [(33922, 12, len(flat), flat, True), (34735, 3, len(directory), directory, True)]
    if scale:
        tags.append((33550, 12, 3, (2.0, 2.0, 0.0), True))
    tifffile.imwrite(path, IMG, extratags=tags)
    return path


def test_tiepoints_are_gcps_numbered_from_one() -> None:
    flat = [0.5, 0.25, 0, 10, 20, 0, 100, 0, 0, 30, 40, 7]
    assert tiepoint_gcps(flat) == (GCP(0.5, 0.25, 10, 20, id="1"), GCP(100, 0, 30, 40, id="2"))
    # PixelIsPoint tiepoints name pixel centres: GDAL moves them to corners
    assert tiepoint_gcps(flat, pixel_is_point=True)[0] == GCP(1.0, 0.75, 10, 20, id="1")


def test_geo_keys_and_crs() -> None:
    directory = [1, 1, 0, 3, 1024, 0, 1, 1, 1026, 34737, 22, 0, 3072, 0, 1, 32633]
    keys = geo_keys(directory)
    assert keys == {1024: 1, 3072: 32633}  # the citation lives in another tag: skipped
    assert crs_name(keys) == "EPSG:32633"
    assert crs_name({3072: 32767}) == "" and crs_name({2048: 4326}) == "EPSG:4326"
    assert geo_keys([]) == {}


def test_read_from_a_file(tmp_path: Path) -> None:
    found = read_geotiff_gcps(geotiff(tmp_path / "scan.tif", keys=[(1025, 2), (2048, 4326)]))
    assert found is not None and found.crs == "EPSG:4326"
    assert [(g.pixel, g.line) for g in found.gcps] == [(px + 0.5, ln + 0.5) for px, ln, _, _ in TIEPOINTS]
    assert "GeoTIFF" in found.origin


def test_georeferenced_tiffs_and_plain_ones_have_no_gcps(tmp_path: Path) -> None:
    # one tiepoint with a pixel scale is an affine georeferencing, not GCPs
    assert read_geotiff_gcps(geotiff(tmp_path / "a.tif", scale=True)) is None
    assert read_geotiff_gcps(geotiff(tmp_path / "b.tif", tiepoints=TIEPOINTS[:1])) is None
    tifffile.imwrite(tmp_path / "c.tif", IMG)
    assert read_geotiff_gcps(tmp_path / "c.tif") is None
    (tmp_path / "d.tif").write_bytes(b"not a tiff")
    assert read_geotiff_gcps(tmp_path / "d.tif") is None


def probe(path: Path, **warp):  # type: ignore[no-untyped-def]
    return plugins.load().registry.probe(path, BuildOptions(extra={"warp": warp} if warp else {}))


def test_a_geotiff_with_gcps_is_a_warp_without_a_sidecar(tmp_path: Path) -> None:
    source = probe(geotiff(tmp_path / "scan.tif"))
    assert isinstance(source, WarpSource)
    assert "GeoTIFF" in source.gcp_origin and len(source.fit.gcps) == 4
    assert source.fit.rms < 1e-6


def test_sidecars_and_the_gcps_option_win_over_embedded_gcps(tmp_path: Path) -> None:
    path = geotiff(tmp_path / "scan.tif")
    rows = ["mapX,mapY,sourceX,sourceY,enable,dX,dY,residual"]
    rows += [f"{x},{y},{p},{-ln},1,0,0,0" for p, ln, x, y in TIEPOINTS[:3]]
    (tmp_path / "other.points").write_text("\n".join(rows) + "\n")
    assert probe(path, gcps=str(tmp_path / "other.points")).gcp_origin == "other.points"
    (tmp_path / "scan.tif.points").write_text("\n".join(rows) + "\n")
    assert probe(path).gcp_origin == "scan.tif.points"
    # warp off: the GeoTIFF is an image like any other
    off = plugins.load().registry.probe(path, BuildOptions(extra={"warp": False}))
    assert not isinstance(off, WarpSource)


@pytest.mark.parametrize("name", ["scan.png", "scan.npy"])
def test_only_tiffs_are_looked_into(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    if name.endswith(".npy"):
        np.save(path, IMG)
    else:
        from PIL import Image

        Image.fromarray(IMG).save(path)
    assert not isinstance(probe(path), WarpSource)
