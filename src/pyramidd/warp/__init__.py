"""Registration: rectify an image through a polynomial model fitted to ground control points.

- :mod:`.gcps` reads GCPs (QGIS ``.points``, GDAL ``GCPList``, profile data);
- :mod:`.geotiff` reads GCPs embedded in a GeoTIFF (tiepoints);
- :mod:`.model` fits the polynomial as ``gdalwarp -order N`` does;
- :mod:`.extent` lays out the output grid;
- :mod:`.sample` holds the near / bilinear / cubic kernels;
- :mod:`.cache` is the bounded LRU of input pieces and the thrash detector;
- :mod:`.inputs` reads the input raster in pieces;
- :mod:`.reader` warps output regions in a render worker;
- :mod:`.source` is the ``warp`` source format registered with the other built-ins.

See ``docs/warp.md``.
"""

from .source import FORMAT, WarpFormat, WarpSource

__all__ = ["FORMAT", "WarpFormat", "WarpSource"]
