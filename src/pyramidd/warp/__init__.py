"""Registration: rectify an image through a polynomial model fitted to ground control points.

- :mod:`.gcps` reads GCPs (QGIS ``.points``, GDAL ``GCPList``, profile data);
- :mod:`.geotiff` reads GCPs embedded in a GeoTIFF (tiepoints);
- :mod:`.model` fits the polynomial as ``gdalwarp -order N`` does;
- :mod:`.extent` lays out the output grid;
- :mod:`.sample` holds the near / bilinear / cubic kernels;
- :mod:`.cache` is the bounded LRU of input pieces and the thrash detector;
- :mod:`.inputs` reads the input raster in pieces;
- :mod:`.reader` warps output regions in a render worker;
- :mod:`.format` is the ``warp`` source format registered with the other built-ins,
  which finds GCPs; :mod:`.source` makes the warp of an input that has them.

See ``docs/warp.md``. The names below are imported on first use (every build probes
for GCPs; few inputs have them).
"""

from ..lazy import exports

_NAMES = {"FORMAT": "format", "WarpFormat": "format", "WarpSource": "source"}
__all__ = list(_NAMES)
__getattr__ = exports(__name__, _NAMES)
