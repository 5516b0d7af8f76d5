"""An OpenSeadragon page for a IIIF image, from pyramidd's viewer libraries."""

from __future__ import annotations

import html
import json

from pyramidd.grid import Grid

from .sink import info_json

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="pyramidd">
<meta name="pyramidd-layout" content="iiif">
<meta name="pyramidd-size" content="{width}x{height}">
<meta name="pyramidd-thumbnail" content="{thumbnail}">
<link rel="icon" href="data:,">
<title>{title}</title>
<style>html, body {{ margin: 0; height: 100%; background: #1e1e1e; }}
#view {{ position: absolute; inset: 0; }}</style>
{library}
</head>
<body>
<div id="view" role="img" aria-label="{title}"></div>
<script>
"use strict";
const config = {config};
const viewer = OpenSeadragon({{
  id: "view", tileSources: config.info, navImages: config.navImages, prefixUrl: "",
  showNavigator: true, blendTime: 0, maxZoomPixelRatio: 4,
}});
window.pyramidd = {{
  viewer: viewer,
  layout: "iiif",
  fullyLoaded: function () {{
    const item = viewer.world.getItemAt(0);
    return !!item && item.getFullyLoaded();
  }},
  zoomTo: function (zoom, x, y) {{
    const item = viewer.world.getItemAt(0);
    const point = item.imageToViewportCoordinates(x, y);
    viewer.viewport.zoomTo(item.imageToViewportZoom(zoom), point, true);
    viewer.viewport.panTo(point, true);
  }},
}};
</script>
</body>
</html>
"""


def viewer_page(name: str, grid: Grid, suffix: str) -> str | None:
    """``NAME/index.html``'s text, or ``None`` when the viewer libraries are missing."""
    from pyramidd.viewer import assets

    try:
        library = assets.scripts("openseadragon")
        nav = assets.osd_nav_images()
    except assets.ViewerAssetsMissing:  # the tiles are what was asked for; no page
        return None
    # The page sits inside the image folder, so the image's id is the folder itself.
    info = info_json(grid, suffix, ".")
    smallest = grid.min_level
    w, h = grid.level_size(smallest)
    thumbnail = f"full/{'max' if (w, h) == (grid.width, grid.height) else f'{w},{h}'}/0/default.{info.get('preferredFormats', ['jpg'])[0]}"
    config = json.dumps({"info": info, "navImages": nav}).replace("</", "<\\/")
    return _PAGE.format(width=grid.width, height=grid.height, thumbnail=html.escape(thumbnail),
                        title=html.escape(name), library=library, config=config)
