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

from pyramidd.viewer import pages
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
def served(tmp_path) -> Iterator[tuple[str, Path, np.ndarray, np.ndarray]]:
    try:
        node_modules()
    except ViewerAssetsMissing as exc:
        pytest.skip(str(exc))
    x, y, edges = generate.layout(3000, seed=7)
    source = generate.write(tmp_path / "net.graphml", "graphml", x, y, edges)
    out = tmp_path / "out"
    subprocess.run([sys.executable, "-m", "pyramidd.cli", "build", str(source), str(out / "net"),
                    "--workers", "1"], check=True, capture_output=True, timeout=120)
    if not (out / "net" / "index.html").exists():  # the graph build does not call the viewer hook yet
        pages.write_page(out, pages.graph_page("net"))
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(out)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/net/", out / "net", x, y
    finally:
        server.shutdown()
        server.server_close()


def test_graph_page_in_sigma(served):
    url, folder, x, y = served
    index = json.loads((folder / "index.json").read_text())
    x0, y0, x1, y1 = index["bounds"]
    nx, ny = (x - x0) / (x1 - x0), (y - y0) / (y1 - y0)
    with Browser.launch() as browser:
        page = browser.new_page(VIEW_W, VIEW_H)
        page.goto(url)
        page.wait_for("window.pyramidd && window.pyramidd.fullyLoaded()", timeout=30)
        first = page.evaluate("window.pyramidd.state.files")
        assert first == [index["tiles"][""]["file"]], "the whole graph starts from the root's sample"
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
    fetched = {r.url.split("/net/")[1] for r in responses if "/tiles/" in r.url}
    assert set(files) <= fetched
    leaves = {t["file"] for t in index["tiles"].values() if t["leaf"] and t["file"]}
    assert files and set(files) <= leaves, "zoomed in, the leaves of the view are drawn"
    inside = [(p["x"], p["y"]) for p in json.loads(points)
              if 10 <= p["x"] < VIEW_W - 10 and 10 <= p["y"] < VIEW_H - 40]
    assert len(inside) >= 20
    drawn = sum(np.abs(shot[round(sy), round(sx)].astype(int) - RED).max() <= 40 for sx, sy in inside)
    assert drawn >= 0.95 * len(inside), f"{drawn} of {len(inside)} source nodes drawn where they are"
