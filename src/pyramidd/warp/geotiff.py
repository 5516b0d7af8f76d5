"""GCPs embedded in a GeoTIFF: several tiepoints in ``ModelTiepointTag``.

A GeoTIFF ties raster to model space with ``ModelTiepointTag`` (33922), six doubles
``I, J, K, X, Y, Z`` per tiepoint. With a ``ModelPixelScaleTag`` (33550) or a
``ModelTransformationTag`` (34264) the first tiepoint anchors an affine
georeferencing and the file is not a set of GCPs; without either, every tiepoint is
a GCP, as GDAL reads them (``gdal_translate -gcp ...`` writes such files). When the
``GTRasterTypeGeoKey`` says *PixelIsPoint*, tiepoints name pixel centres and move by
half a pixel to GDAL's corner-based pixel/line, as GDAL does by default.

The CRS (an EPSG code in the GeoKeys) is kept for reports only: pyramidd does not
reproject.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .gcps import GCP, GCPSet

#: Suffixes of the files whose tags are searched for tiepoints.
TIFF_SUFFIXES = (".tif", ".tiff")

MODEL_TIEPOINT = 33922
MODEL_PIXEL_SCALE = 33550
MODEL_TRANSFORMATION = 34264
GEO_KEY_DIRECTORY = 34735

GT_RASTER_TYPE = 1025
RASTER_PIXEL_IS_POINT = 2
GEOGRAPHIC_TYPE = 2048
PROJECTED_CS_TYPE = 3072
USER_DEFINED = 32767


def geo_keys(directory: Sequence[int]) -> dict[int, int]:
    """The short-valued keys of a ``GeoKeyDirectoryTag`` (keys stored in other tags are skipped).

    The directory is a header ``version, revision, minor, count`` and then
    ``key, location, count, value`` for each key; location 0 means the value is
    the short itself.
    """
    if len(directory) < 4:
        return {}
    keys = {}
    for n in range(int(directory[3])):
        entry = directory[4 + 4 * n : 8 + 4 * n]
        if len(entry) < 4:
            break
        key, location, _count, value = (int(v) for v in entry)
        if location == 0:
            keys[key] = value
    return keys


def tiepoint_gcps(tiepoints: Sequence[float], pixel_is_point: bool = False) -> tuple[GCP, ...]:
    """GCPs from the flat ``I, J, K, X, Y, Z`` values of a ``ModelTiepointTag``.

    Ids count from 1, as GDAL numbers them.
    """
    shift = 0.5 if pixel_is_point else 0.0
    return tuple(
        GCP(float(tiepoints[i]) + shift, float(tiepoints[i + 1]) + shift,
            float(tiepoints[i + 3]), float(tiepoints[i + 4]), id=str(i // 6 + 1))
        for i in range(0, len(tiepoints) - 5, 6)
    )


def crs_name(keys: dict[int, int]) -> str:
    """``EPSG:32633`` from the GeoKeys, or ``""`` when the CRS is not an EPSG code."""
    for key in (PROJECTED_CS_TYPE, GEOGRAPHIC_TYPE):
        code = keys.get(key)
        if code is not None and 0 < code < USER_DEFINED:
            return f"EPSG:{code}"
    return ""


def read_geotiff_gcps(path: Path) -> GCPSet | None:
    """GCPs embedded in the TIFF at ``path``; ``None`` when it has none.

    A file with fewer than two tiepoints, or whose tiepoint is an affine anchor, has
    no GCPs; so has a file tifffile cannot open (the TIFF readers report that).
    """
    from ..sources.tiffpage import first_page

    try:
        with first_page(path) as first:
            tags = first.page.tags
            tiepoints = tags.get(MODEL_TIEPOINT)
            if tiepoints is None or MODEL_PIXEL_SCALE in tags or MODEL_TRANSFORMATION in tags:
                return None
            values = tuple(tiepoints.value)
            directory = tags.get(GEO_KEY_DIRECTORY)
            keys = geo_keys(tuple(directory.value)) if directory is not None else {}
    except Exception:  # not a TIFF tifffile reads: not ours to judge
        return None
    if len(values) < 12:
        return None
    gcps = tiepoint_gcps(values, keys.get(GT_RASTER_TYPE) == RASTER_PIXEL_IS_POINT)
    return GCPSet(gcps, f"{path.name} (GeoTIFF tiepoints)", crs=crs_name(keys))
