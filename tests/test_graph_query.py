"""Rectangle queries and the HTTP API over a built graph pyramid."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import numpy as np
import pytest

from pyramidd.graph import generate
from pyramidd.graph.build import build_graph
from pyramidd.graph.index import GraphIndex, IndexCache
from pyramidd.graph.quadtree import rects_intersect
from pyramidd.graph.query import cover
from pyramidd.pool import WorkerPool


@pytest.fixture(scope="module")
def pyramid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("graphs")
    x, y, edges = generate.layout(3000, seed=8)
    inp = generate.write(root / "g.json", "node-link", x, y, edges)

    async def main() -> None:
        async with WorkerPool(2) as pool:
            await build_graph(inp, root / "demo", {"bag_size": 16, "bags_per_leaf": 4}, pool=pool)

    anyio.run(main)
    return root / "demo"


RECTS = [(-2000, -2000, 2000, 2000), (-300, -250, 420, 100), (0, 0, 1, 1), (900, -90, 1500, 800)]


@pytest.mark.parametrize("rect", RECTS)
@pytest.mark.parametrize("bags", [4, 8, 32, 10**6])
def test_cover_is_complete_within_budget_and_deepest(pyramid: Path, rect, bags: int) -> None:
    index = GraphIndex.load(pyramid)
    budget = bags * index.bag_size
    c = cover(index, rect, budget)
    keys = [t.key for t in c.tiles]
    assert c.total == sum(t.count for t in c.tiles) <= budget
    assert not c.over_budget
    # Complete: every leaf with a file that meets the rectangle is under exactly one
    # tile of the cover; no tile is outside the rectangle.
    for leaf in index.intersecting(rect):
        if leaf.file:
            assert sum(leaf.key.startswith(k) for k in keys) == 1, leaf.key
    assert all(rects_intersect(t.rect, rect) for t in c.tiles)
    # Deepest: no tile of the cover could be refined within the budget.
    for t in c.tiles:
        if not t.leaf:
            kids = [k for k in t.children if k.file and rects_intersect(k.rect, rect)]
            assert c.total - t.count + sum(k.count for k in kids) > budget
    # Stable.
    assert [t.key for t in cover(index, rect, budget).tiles] == keys
    if bags == 10**6:
        assert all(t.leaf for t in c.tiles)


def test_budget_too_small_for_the_root_says_so(pyramid: Path) -> None:
    index = GraphIndex.load(pyramid)
    c = cover(index, RECTS[0], 1)
    assert [t.key for t in c.tiles] == [""] and c.over_budget


def test_rectangle_outside_the_graph_has_no_files(pyramid: Path) -> None:
    assert cover(GraphIndex.load(pyramid), (1e6, 1e6, 2e6, 2e6), 1000).tiles == []


def test_every_node_in_the_rectangle_is_in_a_leaf_cover(pyramid: Path) -> None:
    index = GraphIndex.load(pyramid)
    x, y, _ = generate.layout(3000, seed=8)
    rect = RECTS[1]
    files = [json.loads((pyramid / t.file).read_text()) for t in cover(index, rect, 10**9).tiles]
    shown = {n["id"] for f in files for n in f["nodes"][: f["own"]]}
    inside = (x >= rect[0]) & (x <= rect[2]) & (y >= rect[1]) & (y <= rect[3])
    assert {f"n{i}" for i in np.flatnonzero(inside)} <= shown


def test_locate_descends_to_the_leaf(pyramid: Path) -> None:
    index = GraphIndex.load(pyramid)
    x, y, _ = generate.layout(3000, seed=8)
    for i in range(0, 3000, 97):
        leaf = index.locate(x[i], y[i])
        doc = json.loads((pyramid / leaf.file).read_text())
        assert f"n{i}" in {n["id"] for n in doc["nodes"][: doc["own"]]}


def test_index_is_loaded_once(pyramid: Path) -> None:
    cache = IndexCache()
    assert cache.get(pyramid) is cache.get(pyramid)


# --------------------------------------------------------------------------- HTTP


@pytest.fixture(scope="module")
def client(pyramid: Path):
    pytest.importorskip("httpx")
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from pyramidd.graph.api import make_router

    app = FastAPI()
    app.include_router(make_router(pyramid.parent), prefix="/graph")
    with TestClient(app) as c:
        yield c


def test_open_reports_dimensions_and_budget(client, pyramid: Path) -> None:
    index = GraphIndex.load(pyramid)
    r = client.post("/graph/demo/open", json={"renderers": 6, "bags": 5})
    assert r.status_code == 200
    info = r.json()
    b = index.bounds
    assert info["bounds"] == list(b)
    assert info["aspect"] == pytest.approx((b[2] - b[0]) / (b[3] - b[1]))
    assert info["budget"] == 5 * 16 and info["renderers"] == 6 and info["nodes"] == 3000
    assert [g["name"] for g in client.get("/graph/").json()] == ["demo"]


def test_cover_over_http_in_both_spaces_and_files_served(client, pyramid: Path) -> None:
    index = GraphIndex.load(pyramid)
    n = client.get("/graph/demo/cover", params={"x0": 0.25, "y0": 0.25, "x1": 0.5, "y1": 0.75,
                                                 "bags": 8, "space": "normalised"}).json()
    b = index.bounds
    g = client.get("/graph/demo/cover", params={
        "x0": n["rect"][0], "y0": n["rect"][1], "x1": n["rect"][2], "y1": n["rect"][3], "bags": 8,
    }).json()
    assert n["files"] == g["files"] and n["total"] <= n["budget"] == 128
    assert n["nrect"] == pytest.approx([0.25, 0.25, 0.5, 0.75])
    assert g["rect"][0] == pytest.approx(b[0] + 0.25 * (b[2] - b[0]))
    for f in n["files"]:
        doc = client.get(f["url"]).json()
        assert doc["key"] == f["key"] and doc["nrect"] == pytest.approx(f["nrect"])
        assert len(doc["nodes"]) == f["nodes"]
    assert client.get("/graph/demo/index.json").json()["nodes"] == 3000


@pytest.mark.parametrize("url", [
    "/graph/nope/open", "/graph/demo/tiles/..%2Findex.json", "/graph/demo/tiles/q9.json",
    "/graph/.hidden/cover?x0=0&y0=0&x1=1&y1=1",
])
def test_bad_names_are_404(client, url: str) -> None:
    r = client.post(url, json={}) if url.endswith("open") else client.get(url)
    assert r.status_code == 404


def test_empty_rectangle_is_422(client) -> None:
    r = client.get("/graph/demo/cover", params={"x0": 1, "y0": 0, "x1": 1, "y1": 1})
    assert r.status_code == 422


def test_openapi_documents_the_api(client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/graph/{name}/open", "/graph/{name}/cover", "/graph/{name}/tiles/{file}"} <= set(paths)
