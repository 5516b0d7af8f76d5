"""pyramidd plugin: the ``mbtiles`` layout, a tile pyramid in one SQLite file.

``pyramidd build photo.jpg photo --layout mbtiles`` writes ``photo.mbtiles`` following
the MBTiles 1.3 specification: a ``metadata`` table (name, format, minzoom, maxzoom,
...) and a ``tiles`` table keyed by ``zoom_level``, ``tile_column``, ``tile_row`` with
rows counted from the bottom (TMS order).
"""

from __future__ import annotations

from pyramidd.hookspecs import hookimpl
from pyramidd.plugins import Registry

from .sink import MBTilesFormat, MBTilesSink

__all__ = ["MBTilesFormat", "MBTilesSink", "pyramidd_register"]
__version__ = "0.1.0"


@hookimpl
def pyramidd_register(registry: Registry) -> None:
    """Add the ``mbtiles`` sink."""
    registry.add_sink(MBTilesFormat())
