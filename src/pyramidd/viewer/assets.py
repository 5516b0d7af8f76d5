"""The viewer libraries (OpenSeadragon, Leaflet, sigma.js, graphology), from npm.

They are installed into ``node_modules`` by ``scripts/setup`` (``npm ci`` on the
repository's ``package.json``) and never copied into the repository. A page embeds
the library text it needs, so a pyramid's page works offline, from any static file
server and from ``file://``, without a folder of shared assets next to it.
"""

from __future__ import annotations

import base64
import os
from functools import lru_cache
from pathlib import Path

from ..errors import PyramiddError

#: Files of each library a page uses, relative to ``node_modules``.
LIBRARIES: dict[str, tuple[str, ...]] = {
    "openseadragon": ("openseadragon/build/openseadragon/openseadragon.min.js",),
    "leaflet": ("leaflet/dist/leaflet.js", "leaflet/dist/leaflet.css"),
    "sigma": ("graphology/dist/graphology.umd.min.js", "sigma/dist/sigma.min.js"),
}

#: OpenSeadragon's navigation buttons: (option name, file stem).
OSD_BUTTONS = (("zoomIn", "zoomin"), ("zoomOut", "zoomout"), ("home", "home"),
               ("fullpage", "fullpage"))
_OSD_STATES = (("REST", "rest"), ("GROUP", "grouphover"), ("HOVER", "hover"),
               ("DOWN", "pressed"))


class ViewerAssetsMissing(PyramiddError):
    """The viewer libraries are not installed."""

    kind = "viewer-assets"


def node_modules() -> Path:
    """The ``node_modules`` folder holding the viewer libraries.

    ``PYRAMIDD_VIEWER_ASSETS`` names it explicitly (an installed pyramidd far from
    its checkout); otherwise the folder beside the checkout's ``package.json`` (found
    upwards from this file), then the current directory's, is used.
    """
    explicit = os.environ.get("PYRAMIDD_VIEWER_ASSETS")
    candidates = [Path(explicit)] if explicit else []
    candidates += [p / "node_modules" for p in Path(__file__).resolve().parents]
    candidates.append(Path.cwd() / "node_modules")
    for folder in candidates:
        if (folder / LIBRARIES["openseadragon"][0]).is_file():
            return folder
    raise ViewerAssetsMissing(
        "the viewer libraries are not installed: run scripts/setup (it runs 'npm ci'),"
        " or set PYRAMIDD_VIEWER_ASSETS to a node_modules folder holding openseadragon,"
        " leaflet, sigma and graphology"
    )


@lru_cache(maxsize=None)
def library_text(relative: str) -> str:
    """The text of one library file, made safe to embed in an HTML ``<script>``/``<style>``."""
    path = node_modules() / relative
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ViewerAssetsMissing(
            f"{path} is missing: run 'npm ci' in the pyramidd checkout (scripts/setup)"
        ) from None
    # An end tag inside the text would close the element early; in JavaScript strings
    # and regular expressions "<\/" means the same as "</".
    return text.replace("</", "<\\/") if relative.endswith(".js") else text


def scripts(library: str) -> str:
    """``<script>``/``<style>`` elements embedding ``library``."""
    out = []
    for relative in LIBRARIES[library]:
        text = library_text(relative)
        name = relative.split("/")[0]
        if relative.endswith(".css"):
            out.append(f"<style data-library=\"{name}\">\n{text}\n</style>")
        else:
            out.append(f"<script data-library=\"{name}\">\n{text}\n</script>")
    return "\n".join(out)


@lru_cache(maxsize=None)
def osd_nav_images() -> dict[str, dict[str, str]]:
    """OpenSeadragon's ``navImages`` option with every button image as a data URL."""
    folder = node_modules() / "openseadragon/build/openseadragon/images"
    images: dict[str, dict[str, str]] = {}
    for option, stem in OSD_BUTTONS:
        images[option] = {}
        for state, suffix in _OSD_STATES:
            data = (folder / f"{stem}_{suffix}.png").read_bytes()
            images[option][state] = "data:image/png;base64," + base64.b64encode(data).decode()
    return images
