"""The viewers as an operator uses them: files dropped into a folder watched by the
real ``pyramidd run`` process, pages and tiles served by that service's HTTP, opened
in headless Chromium."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest

from pyramidd.service.testing import ServiceProcess, wait_until, write_config
from pyramidd.testing import gradient, write_image
from pyramidd.viewer.assets import ViewerAssetsMissing, node_modules
from pyramidd.viewer.browser import Browser, find_chromium

from test_viewer_browser import VIEW_H, VIEW_W, ZOOM, check_pixels, check_tiles, view
from test_viewer_graph import zoom_and_look

pytestmark = pytest.mark.skipif(find_chromium() is None, reason="chromium is not installed (scripts/setup)")


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[ServiceProcess, Path, Path]]:
    try:
        node_modules()
    except ViewerAssetsMissing as exc:
        pytest.skip(str(exc))
    drop, out = tmp_path / "drop", tmp_path / "out"
    config = write_config(
        tmp_path / "pyramidd.toml",
        [{"name": "main", "folder": str(drop), "output": str(out), "settle_time": 0.3,
          "min_age": 0.0, "suffix": "png"}],
        state_dir=str(tmp_path / "state"), workers=2, http={"bind": "127.0.0.1:0"},
        log={"format": "json"},
    )
    svc = ServiceProcess(tmp_path, config)
    svc.start()
    try:
        yield svc, drop, out
    finally:
        svc.close()


def base_url(svc: ServiceProcess) -> str:
    address = json.loads((svc.state_dir() / "http.json").read_text())
    return f"http://{address['host']}:{address['port']}"


def test_dropped_image_is_viewed_through_the_running_service(service):
    svc, drop, out = service
    image = gradient(1500, 1000, 3)
    write_image(drop.parent / "photo.png", image).rename(drop / "photo.png")
    wait_until(lambda: (out / "photo.dzi").exists() and (out / "photo.html").exists(), 60,
               "the pyramid and its page")
    base = base_url(svc)
    cx, cy = 700, 500
    with Browser.launch() as browser:
        page = browser.new_page(VIEW_W, VIEW_H)
        page.goto(base + "/outputs/main/")  # the listing of the watch's pyramids
        href = page.evaluate("document.querySelector('li a').getAttribute('href')")
        assert href == "photo.html"
        shot, responses = view(browser, base + "/outputs/main/" + href, ZOOM, cx, cy)
    tiles = check_tiles(responses, "photo_files/")  # every request answered 200
    top = max(int(r.url.split("photo_files/")[1].split("/")[0]) for r in tiles)
    assert top == 11, "zoomed in, the full-resolution tiles come from the service"
    check_pixels(shot, image, cx, cy, ZOOM)
def test_dropped_graph_is_viewed_through_the_services_query_api(service):
    generate = pytest.importorskip("pyramidd.graph.generate")
    svc, drop, out = service
    x, y, edges = generate.layout(3000, seed=7)
    src = generate.write(drop.parent / "net.graphml", "graphml", x, y, edges)
    src.rename(drop / "net.graphml")
    wait_until(lambda: (out / "net" / "index.json").exists(), 60, "the graph pyramid")
    if not (out / "net" / "index.html").exists():
        pytest.fail("the graph build published no viewer page")
    url = base_url(svc) + "/outputs/main/net/?api=/graph/net"
    files, responses = zoom_and_look(url, out / "net", x, y)
    assert any("/graph/" in r.url for r in responses), "covers came from the service's query API"
