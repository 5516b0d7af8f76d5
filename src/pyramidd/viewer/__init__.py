"""Viewer pages written next to every finished pyramid, and the listing of a folder.

This module is also a pyramidd plugin: its :func:`pyramidd_output_staged` hook writes
the page into the staging folder, so the page appears together with the pyramid.

- DZI → ``NAME.html`` (OpenSeadragon) beside ``NAME.dzi``.
- TMS / XYZ → ``NAME/index.html`` (Leaflet) inside the tile folder.
- Graph pyramids → ``NAME/index.html`` (sigma.js), see :mod:`pyramidd.viewer.graph`.

The viewer libraries come from npm (``package.json``, installed by ``scripts/setup``)
and are embedded in each page, which therefore works offline. Set the build option
``viewer = false`` (``options.extra["viewer"]``) to write no page.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..grid import Grid
from ..hookspecs import hookimpl
from ..lazy import exports
from ..options import BuildOptions
from .assets import ViewerAssetsMissing

# Every process loads this plugin, render workers included, and most never write a
# page or a listing: the modules that do are imported on first use.
_LAZY = {
    "find_pyramids": "listing", "listing_html": "listing", "Page": "pages",
    "dzi_page": "pages", "map_page": "pages", "page_for": "pages",
    "write_dzi_page": "pages", "write_page": "pages",
}
__getattr__ = exports(__name__, _LAZY)

__all__ = [
    "Page", "ViewerAssetsMissing", "dzi_page", "find_pyramids", "listing_html", "map_page",
    "page_for", "pyramidd_output_staged", "write_dzi_page", "write_page",
]

log = logging.getLogger(__name__)


@hookimpl
def pyramidd_output_staged(
    staging: Path, output: Path, layout: str, grid: Grid | None, options: BuildOptions
) -> list[str] | None:
    """Write the viewer page of the pyramid into ``staging``.

    A missing viewer library is logged and the pyramid is published without a page:
    the tiles are what the user asked for.
    """
    from .pages import GRAPH_LAYOUTS, page_for, write_page

    if options.extra.get("viewer", True) in (False, "false", "no", "0"):
        return None
    if grid is None and layout not in GRAPH_LAYOUTS:
        return None
    try:
        page = page_for(layout, output, grid, options.suffix, options.extra.get("title"))
    except ViewerAssetsMissing as exc:
        log.warning("no viewer page for %s: %s", Path(output).name, exc)
        return None
    if page is None:
        return None
    if "/" in page.path:  # inside an entry (NAME/index.html): it moves with it
        write_page(staging, page)
        return []
    # A new top-level file must be announced, so it is moved into place too.
    target = Path(output).parent / page.path
    if os.path.lexists(target) and not options.extra.get("replace"):
        from .pages import is_our_page

        if not is_our_page(target):
            log.warning("no viewer page for %s: %s is there and is not a page pyramidd wrote;"
                        " it is kept", Path(output).name, target)
            return None
        # The page of an earlier build of this name. The build checked that nothing
        # else of that pyramid is left, so the page is an orphan, not a thing to keep.
        target.unlink()
    write_page(staging, page)
    return [page.path]
