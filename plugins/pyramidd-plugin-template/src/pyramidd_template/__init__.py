"""pyramidd plugin template: one source and one sink, to copy and rename.

- ``template-raw`` source: headerless 8-bit images whose size is in the file name,
  ``NAME.WIDTHxHEIGHTxBANDS.raw``, read through a memory map region by region.
- ``template-tiles`` sink: ``NAME/LEVEL/COL_ROW.png`` plus ``NAME/manifest.json``,
  built in a staging folder and renamed into place with the manifest written last.

See docs/plugins.md in pyramidd for the hooks and contracts.
"""

from __future__ import annotations

from pyramidd.hookspecs import hookimpl
from pyramidd.plugins import Registry

from .sink import TilesFormat
from .source import RawFormat

__all__ = ["RawFormat", "TilesFormat", "pyramidd_register"]


@hookimpl
def pyramidd_register(registry: Registry) -> None:
    """Add this plugin's formats. Runs in the coordinator and in every worker."""
    registry.add_source(RawFormat())
    registry.add_sink(TilesFormat())
