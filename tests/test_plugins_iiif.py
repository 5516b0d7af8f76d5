"""The IIIF plugin of plugins/pyramidd-iiif: found through its entry point, building
through the real ``pyramidd build``, and its page showing the image in a browser."""

from __future__ import annotations

import functools
import http.server
import io
import json
import subprocess
import sys
import threading

import numpy as np
import pytest
from PIL import Image

from pyramidd.testing import gradient, write_image
from pyramidd.viewer.browser import Browser, find_chromium

pytest.importorskip("pyramidd_iiif", reason="plugins/pyramidd-iiif is not installed (scripts/setup)")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def test_discovered_through_its_entry_point():
    listed = subprocess.run([sys.executable, "-m", "pyramidd.cli", "plugins"], capture_output=True,
                            text=True, timeout=60, check=True).stdout
    assert "iiif (pyramidd_iiif)\n    sink iiif" in listed


def test_pyramidd_build_and_view(tmp_path):
    image = gradient(1500, 1000, 3)
    source = write_image(tmp_path / "in.png", image)
    subprocess.run([sys.executable, "-m", "pyramidd.cli", "build", str(source),
                    str(tmp_path / "out" / "map"), "--layout", "iiif", "--suffix", "png",
                    "--workers", "2"], check=True, capture_output=True, timeout=120)
    root = tmp_path / "out" / "map"
    info = json.loads((root / "info.json").read_text())
    assert info["tiles"][0]["scaleFactors"] == [1, 2, 4, 8]
    tile = np.asarray(Image.open(root / "1280,768,220,232" / "220,232" / "0" / "default.png"))
    np.testing.assert_array_equal(tile, image[768:, 1280:])
    if find_chromium() is None or not (root / "index.html").exists():
        pytest.skip("no browser, or no page (the viewer libraries or the engine's hook call missing)")
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(tmp_path / "out")))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with Browser.launch() as browser:
            page = browser.new_page(800, 600)
            page.goto(f"http://127.0.0.1:{server.server_address[1]}/map/")
            page.wait_for("window.pyramidd && window.pyramidd.fullyLoaded()", timeout=30)
            page.evaluate("window.pyramidd.zoomTo(4, 1100, 600)")
            page.wait_for("window.pyramidd.fullyLoaded()", timeout=30, settle=0.3)
            page.wait_for("window.pyramidd.fullyLoaded()", timeout=30)
            shot = np.asarray(Image.open(io.BytesIO(page.screenshot())).convert("RGB"))
            responses = page.responses
    finally:
        server.shutdown()
        server.server_close()
    assert [(r.url, r.status) for r in responses if r.status != 200] == []
    assert any("/1024,512,256,256/256,256/0/default.png" in r.url for r in responses)
    # Centre of the view is image pixel (1100, 600); at 4x an 8x8 checker square is 32
    # screen pixels, so square centres compare exactly.
    for px, py in [(1100 + dx, 600 + dy) for dx in (-36, -4, 28) for dy in (-36, -4, 28)]:
        px, py = px - px % 8 + 4, py - py % 8 + 4
        sx, sy = round((px - 1100) * 4 + 400), round((py - 600) * 4 + 300)
        assert np.abs(shot[sy, sx].astype(int) - image[py, px]).max() <= 6
