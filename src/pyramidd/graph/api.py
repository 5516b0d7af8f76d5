"""The graph query API: an ``APIRouter`` the service mounts at ``/graph``.

Every graph pyramid is a folder under ``graph_root`` (its name is the folder's name)
holding ``index.json``. The index is loaded once and cached (reloaded when the file
changes); queries are descents of the cached tree.

- ``GET /`` — the graphs served.
- ``POST /{name}/open`` — a display wall opens a graph with its renderers'
  capabilities (number of renderers, bags each draws smoothly); it gets the graph's
  bounds, dimensions and aspect ratio and the object budget of one renderer.
- ``GET /{name}/cover?x0=&y0=&x1=&y1=&bags=&space=graph|normalised`` — the files a
  renderer fetches for its rectangle: the deepest cover within its budget (leaves
  where they fit, coarser sparsified nodes where they would not), each with its URL
  and the rectangle it covers in graph and normalised coordinates.
- ``GET /{name}/tiles/{file}`` and ``GET /{name}/index.json`` — the files themselves.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from ..errors import InputError
from .index import INDEX_NAME, TILES_DIR, GraphIndex, IndexCache
from .quadtree import denormalise_rect, normalise_rect
from .query import cover

NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
TILE = re.compile(r"^q[0-3]*\.json$")


class OpenRequest(BaseModel):
    """The capabilities of the rendering cluster."""

    renderers: int = Field(1, ge=1, le=100000, description="renderers in the wall")
    bags: int = Field(8, ge=1, le=1 << 20, description="bags one renderer draws smoothly")


class GraphInfo(BaseModel):
    """What a wall needs to split the graph among its renderers."""

    name: str
    bounds: list[float] = Field(description="x0, y0, x1, y1 in graph coordinates")
    width: float
    height: float
    aspect: float = Field(description="width / height")
    nodes: int
    edges: int
    levels: int
    leaves: int
    bag_size: int = Field(description="objects in a bag")
    capacity: int = Field(description="objects a leaf or sparse file carries of its own")
    renderers: int | None = None
    budget: int | None = Field(None, description="objects one renderer draws: bags × bag_size")


class CoverFile(BaseModel):
    """One file of a cover."""

    url: str
    key: str = Field(description="quadkey of the tree node")
    level: int
    leaf: bool = Field(description="false: a sparsified sample of the region")
    rect: list[float] = Field(description="region covered, graph coordinates")
    nrect: list[float] = Field(description="region covered, normalised coordinates")
    nodes: int
    edges: int


class CoverResponse(BaseModel):
    """The files a renderer fetches for its rectangle."""

    rect: list[float]
    nrect: list[float]
    budget: int
    total: int = Field(description="objects in the files")
    over_budget: bool = Field(description="even the root's sample exceeds the budget")
    files: list[CoverFile]


def make_router(graph_root: Path) -> APIRouter:
    """A router serving the graph pyramids under ``graph_root``."""
    root = Path(graph_root)
    cache = IndexCache()
    lock = threading.Lock()  # endpoints run in a thread pool

    def load(name: str) -> GraphIndex:
        if not NAME.match(name) or not (root / name / INDEX_NAME).is_file():
            raise HTTPException(404, f"no graph pyramid called {name!r}")
        try:
            with lock:
                return cache.get(root / name)
        except InputError as exc:
            raise HTTPException(404, str(exc)) from None

    def info(name: str, index: GraphIndex) -> GraphInfo:
        return GraphInfo(name=name, **index.describe())

    router = APIRouter(tags=["graph"])

    @router.get("/", response_model=list[GraphInfo], summary="Graph pyramids served")
    def list_graphs() -> list[GraphInfo]:
        out = []
        if root.is_dir():
            for folder in sorted(root.iterdir()):
                if NAME.match(folder.name) and (folder / INDEX_NAME).is_file():
                    try:
                        out.append(info(folder.name, load(folder.name)))
                    except HTTPException:
                        continue
        return out

    @router.post("/{name}/open", response_model=GraphInfo, summary="Open a graph for a wall")
    def open_graph(name: str, wall: OpenRequest) -> GraphInfo:
        index = load(name)
        return info(name, index).model_copy(
            update={"renderers": wall.renderers, "budget": wall.bags * index.bag_size}
        )

    @router.get("/{name}/cover", response_model=CoverResponse,
                summary="Files covering a rectangle within a renderer's budget")
    def cover_rect(
        request: Request,
        name: str,
        x0: float, y0: float, x1: float, y1: float,
        bags: int = Query(8, ge=1, le=1 << 20, description="bags the renderer draws smoothly"),
        space: Literal["graph", "normalised"] = "graph",
    ) -> CoverResponse:
        if not (x0 < x1 and y0 < y1):
            raise HTTPException(422, "the rectangle needs x0 < x1 and y0 < y1")
        index = load(name)
        rect = (x0, y0, x1, y1)
        if space == "normalised":
            rect = denormalise_rect(index.bounds, rect)
        budget = bags * index.bag_size
        result = cover(index, rect, budget)
        files = [
            CoverFile(
                url=str(request.url_for("graph_tile", name=name, file=t.file.split("/")[-1])),
                key=t.key, level=t.level, leaf=t.leaf, rect=list(t.rect),
                nrect=list(index.nrect(t)), nodes=t.nodes, edges=t.edges,
            )
            for t in result.tiles if t.file
        ]
        return CoverResponse(
            rect=list(rect), nrect=list(normalise_rect(index.bounds, rect)), budget=budget,
            total=result.total, over_budget=result.over_budget, files=files,
        )

    @router.get("/{name}/tiles/{file}", name="graph_tile", summary="A tile file")
    def tile(name: str, file: str) -> FileResponse:
        load(name)
        path = root / name / TILES_DIR / file
        if not TILE.match(file) or not path.is_file():
            raise HTTPException(404, f"no tile {file!r} in {name!r}")
        return FileResponse(path, media_type="application/json")

    @router.get("/{name}/index.json", summary="The index of a graph pyramid")
    def index_file(name: str) -> FileResponse:
        load(name)
        return FileResponse(root / name / INDEX_NAME, media_type="application/json")

    return router
