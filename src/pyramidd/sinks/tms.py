"""TMS: the folder ``NAME/z/x/y.ext`` with ``y`` counted from the bottom, as
``gdal2tiles.py -p raster`` writes it, plus its ``tilemapresource.xml``.

gdal2tiles anchors the tile grid at the image's bottom-left corner: the partial row
of tiles is the top one, and its data sits at the bottom of a full 256x256 tile.
The engine gets that grid by building the pyramid of the vertically flipped image
(``LayoutRules.flip_y``), so :meth:`PaddedSink.write_tile` receives rows already
counted from the bottom and pixels already the right way up; this sink only pads
partial tiles at the top and right (``at_bottom``). PNG and WebP tiles carry alpha
with transparent padding, as gdal2tiles' PNG tiles do; JPEG pads with the background.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from pathlib import Path

from ..formats import LayoutRules, Source
from ..grid import Grid
from ..options import BuildOptions
from .encode import TileEncoder
from .xyz import PaddedSink, padded_output, padded_rules

DESCRIPTOR_NAME = "tilemapresource.xml"

# gdal2tiles' template for the raster profile, with its indentation and trailing blanks.
_HEAD = """\
<?xml version="1.0" encoding="utf-8"?>
    <TileMap version="1.0.0" tilemapservice="http://tms.osgeo.org/1.0.0">
      <Title>{title}</Title>
      <Abstract></Abstract>
      <SRS></SRS>
      <BoundingBox minx="{west:.14f}" miny="{south:.14f}" maxx="{east:.14f}" maxy="{north:.14f}"/>
      <Origin x="{west:.14f}" y="{south:.14f}"/>
      <TileFormat width="{tile}" height="{tile}" mime-type="image/{ext}" extension="{ext}"/>
      <TileSets profile="raster">
"""
_TILESET = """        <TileSet href="{zoom}" units-per-pixel="{upp:.14f}" order="{zoom}"/>\n"""
_TAIL = """      </TileSets>
    </TileMap>
    """


def tilemapresource(grid: Grid, suffix: str, title: str) -> str:
    """The ``tilemapresource.xml`` of ``grid``, as gdal2tiles writes it for ``-p raster``.

    Pixel coordinates with y growing up: the image spans ``(0, -height)`` to
    ``(width, 0)``; zoom ``z`` has ``2**(maxzoom - z)`` image pixels per tile pixel.
    The MIME type is ``image/`` plus the suffix, as gdal2tiles writes it (``image/jpg``).
    """
    maxzoom = grid.top - grid.min_level
    text = _HEAD.format(
        # html's escape, not xml.sax's: the same text, without importing urllib.
        title=escape(title, quote=False).replace('"', "&quot;"),
        west=0.0,
        south=-float(grid.height),
        east=float(grid.width),
        north=0.0,
        tile=grid.tile_size,
        ext=suffix,
    )
    for zoom in range(maxzoom + 1):
        text += _TILESET.format(zoom=zoom, upp=float(2 ** (maxzoom - zoom)))
    return text + _TAIL


@dataclass
class TmsSink(PaddedSink):
    """Writes one TMS pyramid: padded ``z/x/y`` tiles from the bottom, descriptor last."""

    title: str = ""
    at_bottom: bool = True

    def descriptor(self) -> tuple[str, bytes]:
        """``tilemapresource.xml`` and its contents."""
        xml = tilemapresource(self.grid, self.encoder.suffix, self.title)
        return DESCRIPTOR_NAME, xml.encode()


class TmsFormat:
    """TMS map tiles: NAME/z/x/y.ext from the bottom-left and tilemapresource.xml, as gdal2tiles -p raster."""

    name = "tms"

    def rules(self, options: BuildOptions) -> LayoutRules:
        """Tile 256, no overlap, zoom 0 the level that fits one tile, rows from the bottom."""
        return padded_rules(options, "tms", flip_y=True)

    def create(self, output: Path, grid: Grid, source: Source, options: BuildOptions) -> TmsSink:
        """The sink for the folder ``output``. Coordinator; writes nothing.

        The descriptor's title is ``options.extra["title"]``, else the input file's
        name (when the source has a ``path``), else the output's name, as gdal2tiles
        defaults to the input's name. Raises :class:`OutputError` when ``output``
        exists and ``options.extra["replace"]`` is not set.
        """
        staging = padded_output(output, options)
        encoder = TileEncoder.from_options(options, alpha=True)
        title = options.extra.get("title")
        if not title:
            path = getattr(source, "path", None)
            title = Path(path).name if path else Path(output).name
        return TmsSink(Path(output), grid, encoder, staging, title=str(title))


TMS = TmsFormat()
