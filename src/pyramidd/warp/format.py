"""The ``warp`` source format as registered: finding GCPs, cheaply, for every input.

Every build asks this format first (see :attr:`WarpFormat.priority`), and nearly every
input has no GCPs; finding that out takes a few file checks and reading a TIFF's
tags, so the model fitting, the output grid and the reader (:mod:`.source`, with
numpy's linear algebra) are imported only for an input that has them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from ..options import BuildOptions
from .gcps import GCPError, GCPSet, find_sidecar_gcps, parse_gcp_xml, parse_inline, read_gcp_file
from .geotiff import TIFF_SUFFIXES, read_geotiff_gcps

if TYPE_CHECKING:
    from .source import WarpSource


def find_gcps(path: Path, opts: Mapping[str, Any]) -> tuple[GCPSet | None, Path]:
    """GCPs for ``path`` and the raster their pixels refer to.

    The first that has GCPs wins: the ``gcps`` option; a VRT's own ``GCPList``;
    the sidecars (:func:`~.gcps.sidecars`, in order); tiepoints embedded in a
    GeoTIFF. Embedded GCPs come last as in GDAL, where a ``.aux.xml`` overrides the
    file's own georeferencing, so a sidecar can correct a file without rewriting it.
    """
    spec = opts.get("gcps")
    found: GCPSet | None
    if spec is not None and not isinstance(spec, (str, os.PathLike)):
        found = parse_inline(spec, "warp gcps")
    elif spec is not None:
        found = read_gcp_file(Path(spec))
    elif path.suffix.lower() == ".vrt" and path.is_file():
        found = parse_gcp_xml(path.read_text(encoding="utf-8-sig"), path.name, base=path.parent)
    else:
        found = find_sidecar_gcps(path)
        if found is None and path.suffix.lower() in TIFF_SUFFIXES and path.is_file():
            found = read_geotiff_gcps(path)
    raster = path
    if path.suffix.lower() == ".vrt":
        vrt = parse_gcp_xml(path.read_text(encoding="utf-8-sig"), path.name, base=path.parent)
        if vrt is None or vrt.raster is None:
            raise GCPError(f"{path.name}: a VRT without GCPs; warp the raster it points to instead")
        raster = vrt.raster
    return found, raster


class WarpFormat:
    """Rectify an image with ground control points (polynomial warp, like gdalwarp -order N)."""

    name = "warp"
    #: Asked before every reader of plain rasters (built-in or specialised), which
    #: would open the same file unwarped; it declines files without GCPs.
    priority = 100

    def probe(self, path: Path, options: BuildOptions) -> WarpSource | None:
        """A :class:`WarpSource` when ``path`` has GCPs, else None. Runs in the coordinator."""
        raw = options.extra.get("warp")
        if raw is False:
            return None
        opts: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        gset, raster = find_gcps(Path(path), opts)
        if gset is None:
            if opts.get("order") is not None or opts.get("output_size") is not None:
                import structlog

                structlog.get_logger("pyramidd.warp").warning(
                    "warp.no_gcps", input=str(path),
                    note="warp options given but no GCPs found: building the image unwarped; "
                    "give --gcps or put IMAGE.points beside it",
                )
            return None
        from .source import warp_source

        return warp_source(gset, raster, opts, options)


FORMAT = WarpFormat()
