"""Serving output folders over HTTP: the listing page and the pyramids' files.

The service mounts one app for all its output folders::

    from pyramidd.viewer.http import outputs_app
    app.mount("/outputs", outputs_app({"photos": Path("/srv/out/photos"), ...}))

- ``GET /``             links to each folder's listing
- ``GET /NAME/``        the listing of folder ``NAME`` (see :mod:`pyramidd.viewer.listing`)
- ``GET /NAME/PATH``    a file of the folder: tiles, descriptors, viewer pages
  (``PATH/`` serves ``PATH/index.html``, the page of a TMS, XYZ or graph pyramid)

Hidden entries (staging folders of builds in progress, dot-files) are never served.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Mapping
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from .listing import listing_html
from .pages import render


class _VisibleFiles(StaticFiles):
    """Static files minus hidden entries: a build in progress stays invisible."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        """404 for any path through a hidden entry, else the file."""
        if any(part.startswith(".") for part in Path(path).parts):
            raise HTTPException(status_code=404)
        return await super().get_response(path, scope)


def outputs_app(folders: Mapping[str, Path], *, title: str = "pyramids",
                graph_api: Mapping[str, str] | None = None) -> Starlette:
    """An ASGI app serving ``folders`` (URL name → output folder) with listings.

    ``graph_api`` maps a folder's URL name to the URL where the service's graph query
    router serves that folder (``{"graphs": "/graph"}``): its graph pages then ask
    that API for the files of the view.
    """
    folders = {name: Path(path) for name, path in folders.items()}
    graph_api = dict(graph_api or {})

    async def index(request: Request) -> Response:
        if len(folders) == 1:
            (only,) = folders
            return RedirectResponse(f"{request.scope.get('root_path', '')}/{quote(only)}/")
        items = "\n".join(
            f'<li><a href="{html.escape(quote(name))}/"><span class="none">{html.escape(name)}</span>'
            f"<b>{html.escape(name)}</b><small>{html.escape(str(path))}</small></a></li>"
            for name, path in sorted(folders.items())
        )
        return HTMLResponse(render("listing.html", TITLE=html.escape(title),
                                   COUNT=str(len(folders)), ITEMS=items))

    def listing(name: str, path: Path):  # type: ignore[no-untyped-def]
        async def endpoint(request: Request) -> Response:
            # Links relative to the folder's own URL, so any mount point works.
            return HTMLResponse(listing_html(path, prefix="", title=f"{title}: {name}",
                                             graph_api=graph_api.get(name)))

        return endpoint

    routes: list = [Route("/", index)]
    for name, path in folders.items():
        routes.append(Route(f"/{name}/", listing(name, path)))
        routes.append(Mount(f"/{name}", _VisibleFiles(directory=path, html=True, check_dir=False)))
    return Starlette(routes=routes)
