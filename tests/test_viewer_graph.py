"""The graph pyramid page in a real browser: headless Chromium opens the sigma.js page
of a graph pyramid built by ``pyramidd build``, served over HTTP on 127.0.0.1; at first
it draws the coarse sparsified root file, zoomed in it fetches the leaves of the
visible rectangle, and every node of the source graph in view is drawn where the
source puts it."""

from __future__ import annotations

import functools
import http.server
import io
import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from PIL import Image

from pyramidd.viewer.assets import ViewerAssetsMissing, node_modules
from pyramidd.viewer.browser import Browser, find_chromium

generate = pytest.importorskip("pyramidd.graph.generate")

pytestmark = pytest.mark.skipif(find_chromium() is None, reason="chromium is not installed (scripts/setup)")

VIEW_W, VIEW_H = 800, 600
RED = np.array([0xD6, 0x27, 0x28])


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def built(tmp_path) -> tuple[Path, np.ndarray, np.ndarray]:
    """A graph pyramid ``out/net`` built by ``pyramidd build`` from a generated layout."""
    try:
        node_modules()
    except ViewerAssetsMissing as exc:
        pytest.skip(str(exc))
    x, y, edges = generate.layout(3000, seed=7)
    source = generate.write(tmp_path / "net.graphml", "graphml", x, y, edges)
    out = tmp_path / "out"
    subprocess.run([sys.executable, "-m", "pyramidd.cli", "build", str(source), str(out / "net"),
                    "--workers", "1"], check=True, capture_output=True, timeout=120)
    assert (out / "net" / "index.html").exists(), "the graph build publishes its viewer page"
    return out, x, y


@pytest.fixture
def served(built) -> Iterator[tuple[str, Path, np.ndarray, np.ndarray]]:
    """The pyramid's folder on a plain static server."""
    out, x, y = built
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(out)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/net/", out / "net", x, y
    finally:
        server.shutdown()
        server.server_close()


def zoom_and_look(url: str, folder: Path, x: np.ndarray, y: np.ndarray) -> tuple[list, list]:
    """Open the page, check the first view is the root's sample, zoom in, check every
    source node in view is drawn where the source puts it; return the files drawn and
    the responses."""
    index = json.loads((folder / "index.json").read_text())
    x0, y0, x1, y1 = index["bounds"]
    nx, ny = (x - x0) / (x1 - x0), (y - y0) / (y1 - y0)
    with Browser.launch() as browser:
        page = browser.new_page(VIEW_W, VIEW_H)
        page.goto(url)
        page.wait_for("window.pyramidd && window.pyramidd.fullyLoaded()", timeout=30)
        first = page.evaluate("window.pyramidd.state.files")
        root_file = index["tiles"][""]["file"]
        assert [f.split("/")[-1] for f in first] == [root_file.split("/")[-1]], \
            "the whole graph starts from the root's sample"
        cx, cy, zoom = 0.3, 0.35, 8
        page.evaluate(f"window.pyramidd.zoomTo({zoom}, {cx}, {cy})")
        page.wait_for("window.pyramidd.fullyLoaded()", timeout=30, settle=0.3)
        page.wait_for("window.pyramidd.fullyLoaded()", timeout=30)
        files = page.evaluate("window.pyramidd.state.files")
        shot = np.asarray(Image.open(io.BytesIO(page.screenshot())).convert("RGB"))
        # Where the source's nodes are on screen: the page's camera transform, asked
        # for the source coordinates, not for what the page loaded.
        points = page.evaluate(
            "JSON.stringify(" + json.dumps([[a, b] for a, b in zip(nx.tolist(), ny.tolist())])
            + ".map(p => window.pyramidd.toViewport(p[0], p[1])))"
        )
        responses = page.responses
        assert page.console_errors() == []
    assert [(r.url, r.status) for r in responses if r.status != 200] == []
    leaves = {t["file"].split("/")[-1] for t in index["tiles"].values() if t["leaf"] and t["file"]}
    drawn_files = {f.split("/")[-1] for f in files}
    assert drawn_files and drawn_files <= leaves, "zoomed in, the leaves of the view are drawn"
    fetched = {r.url.split("/")[-1] for r in responses if "/tiles/" in r.url}
    assert drawn_files <= fetched
    inside = [(p["x"], p["y"]) for p in json.loads(points)
              if 10 <= p["x"] < VIEW_W - 10 and 10 <= p["y"] < VIEW_H - 40]
    assert len(inside) >= 20
    drawn = sum(np.abs(shot[round(sy), round(sx)].astype(int) - RED).max() <= 40 for sx, sy in inside)
    assert drawn >= 0.95 * len(inside), f"{drawn} of {len(inside)} source nodes drawn where they are"
    return files, responses


def test_graph_page_in_sigma(served):
    url, folder, x, y = served
    zoom_and_look(url, folder, x, y)


def test_graph_page_through_the_query_api(built):
    """Served as the service serves it: the output folder through the outputs app, the
    rectangle queries through the graph API's router, both under hypercorn."""
    import asyncio
    import socket
    import time
    import urllib.request

    from fastapi import FastAPI
    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config

    from pyramidd.graph.api import make_router
    from pyramidd.viewer.http import outputs_app

    out, x, y = built
    app = FastAPI()
    app.include_router(make_router(out), prefix="/graph")
    app.mount("/outputs", outputs_app({"graphs": out}))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = config.errorlog = None
    loop, stop = asyncio.new_event_loop(), asyncio.Event()
    thread = threading.Thread(
        target=loop.run_until_complete,
        args=(hypercorn_serve(app, config, shutdown_trigger=stop.wait),), daemon=True)
    thread.start()
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/graph/", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        url = f"http://127.0.0.1:{port}/outputs/graphs/net/?api=/graph/net"
        files, responses = zoom_and_look(url, out / "net", x, y)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
    queries = [r for r in responses if "/graph/net/cover?" in r.url]
    assert len(queries) >= 2, "the first view and the zoomed one were asked of the API"
    assert all(f.startswith(f"http://127.0.0.1:{port}/graph/net/tiles/") for f in files)
