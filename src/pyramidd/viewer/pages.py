"""Viewer pages: one HTML file per pyramid, with its viewer library embedded.

- DZI: OpenSeadragon, the descriptor embedded (``NAME.html`` beside ``NAME.dzi``).
- TMS / XYZ: Leaflet in a plain-pixel coordinate system (``NAME/index.html``).
- Graph pyramids: sigma.js drawing the leaf files of the visible rectangle, found
  through the graph index (``NAME/index.html``); see :mod:`pyramidd.viewer.graph`.

Every page carries ``<meta name="pyramidd-...">`` tags (layout, size, thumbnail) that
the listing page reads, so a folder of pyramids is described by its pages alone.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..grid import Grid
from . import assets

#: Layouts drawn by Leaflet, and whether their rows count from the bottom.
MAP_LAYOUTS = {"tms": True, "xyz": False}

#: Layouts drawn by the graph page.
GRAPH_LAYOUTS = ("graph-json",)

#: Largest thumbnail side, in pixels: the listing shows one tile at most this big.
THUMBNAIL = 256


@dataclass(frozen=True)
class Page:
    """A page to write: its path relative to the output's folder, and its HTML."""

    path: str
    html: str


def template(name: str) -> str:
    """The text of ``templates/NAME``.

    Read beside this module, not through importlib.resources: that and the XML parser
    were 7 ms of every build's end, after its last tile; pip unpacks packages, so the
    templates are files.
    """
    return (Path(__file__).with_name("templates") / name).read_text("utf-8")


def render(name: str, **values: str) -> str:
    """Fill ``{{KEY}}`` placeholders of a template. Values are inserted as given."""
    text = template(name)
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    return text


def script_json(value: Any) -> str:
    """JSON safe to put inside a ``<script>`` element."""
    return json.dumps(value, separators=(",", ":")).replace("</", "<\\/").replace("<!--", "<\\u0021--")


def _metas(layout: str, width: int, height: int, thumbnail: str | None) -> str:
    tags = [f'<meta name="pyramidd-layout" content="{html.escape(layout)}">']
    if width and height:
        tags.append(f'<meta name="pyramidd-size" content="{width}x{height}">')
    if thumbnail:
        tags.append(f'<meta name="pyramidd-thumbnail" content="{html.escape(thumbnail)}">')
    return "\n".join(tags)


#: The mark every page written here carries in its head.
GENERATOR = '<meta name="generator" content="pyramidd">'


def _with_metas(page: str, metas: str) -> str:
    return page.replace(GENERATOR, GENERATOR + "\n" + metas, 1)


def is_our_page(path: Path) -> bool:
    """Whether ``path`` is a regular file with the mark of a page written here."""
    try:
        if not path.is_file() or path.is_symlink():
            return False
        with open(path, "rb") as f:
            return GENERATOR.encode() in f.read(4096)
    except OSError:
        return False


def thumbnail_level(grid: Grid) -> int:
    """The largest level that fits one tile of at most :data:`THUMBNAIL` pixels."""
    best = grid.min_level
    for level in grid.levels():
        w, h = grid.level_size(level)
        if w <= min(THUMBNAIL, grid.tile_size) and h <= min(THUMBNAIL, grid.tile_size):
            best = level
    return best


def dzi_page(name: str, grid: Grid, suffix: str, title: str | None = None) -> Page:
    """The OpenSeadragon page ``NAME.html`` for ``NAME.dzi`` + ``NAME_files/``."""
    title = title or name
    level = thumbnail_level(grid)
    config = {
        "tileSource": {
            "Image": {
                "xmlns": "http://schemas.microsoft.com/deepzoom/2008",
                # Relative, so the pyramid can be moved or served under any prefix.
                "Url": f"{name}_files/",
                "Format": suffix,
                "Overlap": str(grid.overlap),
                "TileSize": str(grid.tile_size),
                "Size": {"Width": str(grid.width), "Height": str(grid.height)},
            }
        },
        "navImages": assets.osd_nav_images(),
    }
    page = render(
        "dzi.html",
        TITLE=html.escape(title),
        SIZE=f"{grid.width}×{grid.height}",
        LIBRARY=assets.scripts("openseadragon"),
        CONFIG=script_json(config),
    )
    metas = _metas("dzi", grid.width, grid.height, f"{name}_files/{level}/0_0.{suffix}")
    return Page(f"{name}.html", _with_metas(page, metas))


def map_page(layout: str, name: str, grid: Grid, suffix: str, title: str | None = None) -> Page:
    """The Leaflet page ``NAME/index.html`` for a ``z/x/y.ext`` pyramid in ``NAME/``.

    ``grid.depth`` is ``"onetile"``: zoom 0 is ``grid.min_level``.
    """
    if layout not in MAP_LAYOUTS:
        raise ValueError(f"no map page for layout {layout!r}")
    title = title or name
    config = {
        "layout": layout,
        "title": title,
        "tms": MAP_LAYOUTS[layout],
        "url": "{z}/{x}/{y}." + suffix,
        "width": grid.width,
        "height": grid.height,
        "tileSize": grid.tile_size,
        "maxZoom": grid.top - grid.min_level,
    }
    page = render(
        "map.html",
        TITLE=html.escape(title),
        LIBRARY=assets.scripts("leaflet"),
        CONFIG=script_json(config),
    )
    metas = _metas(layout, grid.width, grid.height, f"0/0/0.{suffix}")
    return Page(f"{name}/index.html", _with_metas(page, metas))


def page_for(layout: str, output: Path, grid: Grid | None, suffix: str,
             title: str | None = None) -> Page | None:
    """The page of a pyramid written at ``output`` (as the sink reports it), or ``None``
    for layouts without one. ``grid`` is ``None`` for graph pyramids."""
    output = Path(output)
    if layout in GRAPH_LAYOUTS:
        return graph_page(output.name, title=title)
    if grid is None:
        return None
    if layout == "dzi":
        name = output.name[:-4] if output.name.lower().endswith(".dzi") else output.name
        return dzi_page(name, grid, suffix, title)
    if layout in MAP_LAYOUTS:
        return map_page(layout, output.name, grid, suffix, title)
    return None


def write_page(folder: Path, page: Page) -> Path:
    """Write ``page`` under ``folder``; return its path."""
    path = Path(folder) / page.path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page.html, encoding="utf-8")
    return path


def read_dzi(descriptor: Path) -> tuple[Grid, str]:
    """The grid and tile suffix of an existing ``.dzi`` descriptor."""
    import xml.etree.ElementTree as ET

    root = ET.parse(descriptor).getroot()
    ns = root.tag.split("}")[0] + "}" if root.tag.startswith("{") else ""
    size = root.find(f"{ns}Size")
    if size is None:
        raise ValueError(f"{descriptor}: no <Size> element")
    grid = Grid(int(size.get("Width", 0)), int(size.get("Height", 0)),
                int(root.get("TileSize", 0)), int(root.get("Overlap", 0)))
    return grid, root.get("Format", "jpg")


def write_dzi_page(descriptor: Path, title: str | None = None) -> Path:
    """Write (or rewrite) the page of an existing Deep Zoom pyramid beside its descriptor."""
    descriptor = Path(descriptor)
    grid, suffix = read_dzi(descriptor)
    return write_page(descriptor.parent, dzi_page(descriptor.stem, grid, suffix, title))


def graph_page(name: str, *, title: str | None = None, budget: int = 5000) -> Page:
    """The sigma.js page ``NAME/index.html`` of a graph pyramid in ``NAME/``.

    For the visible rectangle it asks for the files covering it within ``budget``
    objects, fetches and draws them; zooming in swaps coarse sparsified files for
    deeper ones. Opened as ``NAME/?api=/graph/NAME`` it asks the service's query API
    (:mod:`pyramidd.graph.api`, ``GET .../cover``); opened plainly it runs the same
    query itself over ``index.json``, so any static server will do. It must be served
    over HTTP: browsers do not let a page opened from ``file://`` fetch files.
    """
    title = title or name
    config = {
        "title": title,
        "base": "",
        "index": "index.json",
        "budget": budget,
        "nodeSize": 3,
        "nodeColor": "#d62728",
        "edgeColor": "#b8b8b8",
    }
    page = render(
        "graph.html",
        TITLE=html.escape(title),
        LIBRARY=assets.scripts("sigma"),
        CONFIG=script_json(config),
    )
    return Page(f"{name}/index.html", _with_metas(page, _metas("graph", 0, 0, None)))
