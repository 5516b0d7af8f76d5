"""The viewer pages in a real browser: headless Chromium opens the page of a pyramid
built by ``pyramidd build``, served over HTTP on 127.0.0.1, zooms in, and the test
checks every tile request succeeded and the screenshot shows the source image."""

from __future__ import annotations

import functools
import http.server
import io
import subprocess
import sys
import threading
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from PIL import Image

from pyramidd.testing import gradient, write_image
from pyramidd.viewer.assets import ViewerAssetsMissing, node_modules
from pyramidd.viewer.browser import Browser, find_chromium

pytestmark = [
    pytest.mark.skipif(find_chromium() is None, reason="chromium is not installed (scripts/setup)"),
]

WIDTH, HEIGHT = 1500, 1000
VIEW_W, VIEW_H = 800, 600
ZOOM = 4  # screen pixels per image pixel once zoomed in


@pytest.fixture(scope="module", autouse=True)
def _assets() -> None:
    try:
        node_modules()
    except ViewerAssetsMissing as exc:
        pytest.skip(str(exc))


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def serve() -> Iterator:
    """``serve(folder) -> base URL``: a plain static server on 127.0.0.1, stopped after."""
    servers = []

    def start(folder: Path) -> str:
        handler = functools.partial(_Quiet, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with Browser.launch() as b:
        yield b


def build(tmp_path: Path, layout: str, name: str) -> tuple[np.ndarray, Path]:
    """Run the real ``pyramidd build`` on a generated PNG; PNG tiles so pixels compare tightly."""
    image = gradient(WIDTH, HEIGHT, 3)
    source = write_image(tmp_path / "source.png", image)
    out = tmp_path / "out"
    subprocess.run(
        [sys.executable, "-m", "pyramidd.cli", "build", str(source), str(out / name),
         "--layout", layout, "--suffix", "png", "--workers", "1"],
        check=True, timeout=120, capture_output=True,
    )
    return image, out


def page_of(out: Path, layout: str, name: str) -> str:
    """The viewer page the build published with the pyramid, relative to ``out``."""
    path = out / (f"{name}.html" if layout == "dzi" else f"{name}/index.html")
    assert path.is_file(), f"pyramidd build wrote no viewer page for the {layout} pyramid"
    return f"{name}.html" if layout == "dzi" else f"{name}/"


def view(browser: Browser, url: str, zoom: int, x: int, y: int) -> tuple[np.ndarray, list]:
    """Open ``url``, wait for the tiles, zoom to ``zoom`` at image pixel (x, y), wait
    again; return the screenshot and the responses."""
    page = browser.new_page(VIEW_W, VIEW_H)
    page.goto(url)
    page.wait_for("window.pyramidd && window.pyramidd.fullyLoaded()", timeout=30)
    page.evaluate(f"window.pyramidd.zoomTo({zoom}, {x}, {y})")
    page.wait_for("window.pyramidd.fullyLoaded()", timeout=30, settle=0.3)
    page.wait_for("window.pyramidd.fullyLoaded()", timeout=30)
    shot = np.asarray(Image.open(io.BytesIO(page.screenshot())).convert("RGB"))
    assert page.console_errors() == []
    return shot, page.responses


def check_tiles(responses: list, tile_pattern: str) -> list:
    tiles = [r for r in responses if tile_pattern in r.url]
    assert tiles, f"no tile requested: {[r.url for r in responses][:10]}"
    bad = [(r.url, r.status, r.error) for r in responses if r.status != 200]
    assert bad == []
    return tiles


def check_pixels(shot: np.ndarray, image: np.ndarray, cx: int, cy: int, scale: float) -> None:
    """Screen pixels at the centres of checker squares equal the source pixels there.

    Screen (sx, sy) shows image ((sx - VIEW_W/2) / scale + cx, (sy - VIEW_H/2) / scale + cy).
    """
    checked = 0
    for iy in range(cy - 56, cy + 57, 16):
        for ix in range(cx - 88, cx + 89, 16):
            # Centre of an 8x8 checker square, where interpolation cannot blend colours.
            px, py = ix - ix % 8 + 4, iy - iy % 8 + 4
            sx = round((px - cx) * scale + VIEW_W / 2)
            sy = round((py - cy) * scale + VIEW_H / 2)
            if not (40 <= sx < VIEW_W - 200 and 40 <= sy < VIEW_H - 40):
                continue  # clear of the controls and the navigator
            got = shot[sy, sx].astype(int)
            want = image[py, px].astype(int)
            assert np.abs(got - want).max() <= 6, f"screen {sx},{sy} = {got}, image {px},{py} = {want}"
            checked += 1
    assert checked >= 20


def test_dzi_page_in_openseadragon(tmp_path, serve, browser):
    image, out = build(tmp_path, "dzi", "photo")
    url = serve(out) + page_of(out, "dzi", "photo")
    cx, cy = 700, 500
    shot, responses = view(browser, url, ZOOM, cx, cy)
    tiles = check_tiles(responses, "photo_files/")
    top = max(int(r.url.split("photo_files/")[1].split("/")[0]) for r in tiles)
    assert top == 11, "zoomed in, the full-resolution level is shown"
    check_pixels(shot, image, cx, cy, ZOOM)


@pytest.mark.parametrize("layout", ["tms", "xyz"])
def test_tile_map_page_in_leaflet(tmp_path, serve, browser, layout):
    image, out = build(tmp_path, layout, "map")
    url = serve(out) + page_of(out, layout, "map")
    cx, cy = 700, 500
    from pyramidd.grid import Grid

    grid = Grid(WIDTH, HEIGHT, 256, 0, "onetile")
    full = grid.top - grid.min_level  # zoom 0 fits one tile; ``full`` is 1:1
    # Two zooms past 1:1 is 4 screen pixels per image pixel, from the native tiles.
    shot, responses = view(browser, url, full + 2, cx, cy)
    tiles = check_tiles(responses, "map/")
    zooms = {r.url.split("map/")[1].split("/")[0] for r in tiles if r.url.endswith(".png")}
    assert str(full) in zooms
    check_pixels(shot, image, cx, cy, ZOOM)


@pytest.fixture
def serve_outputs() -> Iterator:
    """``serve_outputs({name: folder}) -> base URL``: the output folders through
    :func:`pyramidd.viewer.http.outputs_app` under hypercorn on 127.0.0.1, as the
    service mounts them."""
    import asyncio
    import socket

    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config

    from pyramidd.viewer.http import outputs_app

    stops = []

    def start(folders: dict[str, Path]) -> str:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        config = Config()
        config.bind = [f"127.0.0.1:{port}"]
        config.accesslog = None
        config.errorlog = None
        loop = asyncio.new_event_loop()
        stop = asyncio.Event()
        ready = threading.Event()

        async def run() -> None:
            ready.set()
            await hypercorn_serve(outputs_app(folders), config, shutdown_trigger=stop.wait)

        thread = threading.Thread(target=loop.run_until_complete, args=(run(),), daemon=True)
        thread.start()
        ready.wait(10)
        stops.append((loop, stop, thread))
        import time
        import urllib.request

        for _ in range(100):  # until hypercorn listens
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        return f"http://127.0.0.1:{port}/"

    yield start
    for loop, stop, thread in stops:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)


def test_listing_then_viewer_through_the_outputs_app(tmp_path, serve_outputs, browser):
    image, out = build(tmp_path, "dzi", "photo")
    page_of(out, "dzi", "photo")
    base = serve_outputs({"photos": out})
    page = browser.new_page(VIEW_W, VIEW_H)
    page.goto(base + "photos/")
    href = page.evaluate("document.querySelector('li a').getAttribute('href')")
    assert href == "photo.html"
    # The thumbnail is the level that fits one tile: it loads (lazily, so wait for it).
    page.wait_for("document.querySelector('li img').complete"
                  " && document.querySelector('li img').naturalWidth > 0", timeout=10)
    page.goto(base + "photos/" + href)
    page.wait_for("window.pyramidd && window.pyramidd.fullyLoaded()", timeout=30)
    cx, cy = 400, 300
    page.evaluate(f"window.pyramidd.zoomTo({ZOOM}, {cx}, {cy})")
    page.wait_for("window.pyramidd.fullyLoaded()", timeout=30, settle=0.3)
    page.wait_for("window.pyramidd.fullyLoaded()", timeout=30)
    shot = np.asarray(Image.open(io.BytesIO(page.screenshot())).convert("RGB"))
    check_tiles(page.responses, "photo_files/")
    check_pixels(shot, image, cx, cy, ZOOM)
