"""pyramidd plugin: the ``iiif`` layout, IIIF Image API 3.0 at compliance level 0.

``pyramidd build scan.tif scan --layout iiif`` writes the folder ``scan/`` with
``info.json`` and one file per tile at its canonical IIIF URI,
``REGION/SIZE/0/default.jpg``, as ``vips dzsave --layout iiif3`` does; any IIIF viewer
(Mirador, Universal Viewer, OpenSeadragon) opens it from a static web server. Set the
build option ``iiif_base`` to the URL the folder will be published under, so
``info.json`` carries an absolute ``id``; without it the ``id`` is the folder's name,
which resolves relative to a page beside the folder.

Through the ``pyramidd_output_staged`` hook it also writes ``scan/index.html``, an
OpenSeadragon page reading the tiles as a IIIF image.
"""

from __future__ import annotations

from pathlib import Path

from pyramidd.grid import Grid
from pyramidd.hookspecs import hookimpl
from pyramidd.options import BuildOptions
from pyramidd.plugins import Registry

from .sink import IIIFFormat, IIIFSink, info_json

__all__ = ["IIIFFormat", "IIIFSink", "info_json", "pyramidd_output_staged", "pyramidd_register"]
__version__ = "0.1.0"


@hookimpl
def pyramidd_register(registry: Registry) -> None:
    """Add the ``iiif`` sink."""
    registry.add_sink(IIIFFormat())


@hookimpl
def pyramidd_output_staged(
    staging: Path, output: Path, layout: str, grid: Grid | None, options: BuildOptions
) -> list[str] | None:
    """Write ``NAME/index.html``, an OpenSeadragon page of the IIIF image."""
    if layout != IIIFFormat.name or grid is None:
        return None
    if options.extra.get("viewer", True) in (False, "false", "no", "0"):
        return None
    from .page import viewer_page

    page = viewer_page(output.name, grid, options.suffix)
    if page is not None:
        (Path(staging) / output.name / "index.html").write_text(page, encoding="utf-8")
    return None
