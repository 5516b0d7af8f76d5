"""Viewer pages, the listing page and the HTTP app serving output folders, without a
browser (see test_viewer_browser.py and test_viewer_graph.py for the pages at work)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pyramidd.grid import Grid
from pyramidd.options import BuildOptions
from pyramidd.viewer import (
    ViewerAssetsMissing, dzi_page, find_pyramids, listing_html, map_page, page_for,
    pyramidd_output_staged, write_page,
)
from pyramidd.viewer import assets
from pyramidd.viewer.pages import graph_page

try:
    assets.node_modules()
except ViewerAssetsMissing as exc:  # pragma: no cover - set-up installs them
    pytest.skip(str(exc), allow_module_level=True)


def external_references(page: str) -> list[str]:
    """What would load from another host: ``src`` attributes, ``<link href>`` and CSS
    ``url()`` (a plain ``<a href>`` link, as in Leaflet's attribution, loads nothing)."""
    return (re.findall(r"""src\s*=\s*["'](?:https?:)?//[^"']+""", page)
            + re.findall(r"""<link[^>]+href\s*=\s*["'](?:https?:)?//[^"']+""", page)
            + re.findall(r"""url\(\s*["']?(?:https?:)?//[^)]+""", page))


@pytest.mark.parametrize("page", [
    dzi_page("photo", Grid(1000, 700, 254, 1), "jpg"),
    map_page("tms", "photo", Grid(1000, 700, 256, 0, "onetile"), "png"),
    map_page("xyz", "photo", Grid(1000, 700, 256, 0, "onetile"), "webp"),
    graph_page("net"),
], ids=["dzi", "tms", "xyz", "graph"])
def test_pages_embed_their_library_and_load_nothing_from_elsewhere(page):
    assert external_references(page.html) == []
    assert "<script src" not in page.html
    assert 'data-library="' in page.html
    assert page.html.count("</script>") == page.html.count("<script")


def test_dzi_page_names_its_tiles_relatively():
    page = dzi_page("photo", Grid(1000, 700, 254, 1), "jpg")
    assert page.path == "photo.html"
    assert '"Url":"photo_files/"' in page.html
    assert '<meta name="pyramidd-thumbnail" content="photo_files/8/0_0.jpg">' in page.html


def test_titles_are_escaped():
    page = dzi_page("x", Grid(10, 10, 254, 1), "jpg", title="<script>alert(1)</script>")
    assert "<script>alert(1)" not in page.html


def test_page_for_each_layout():
    grid = Grid(300, 200, 256, 0, "onetile")
    assert page_for("dzi", Path("out/a.dzi"), Grid(300, 200, 254, 1), "jpg").path == "a.html"
    assert page_for("tms", Path("out/a"), grid, "png").path == "a/index.html"
    assert page_for("graph-json", Path("out/g"), grid, "png").path == "g/index.html"
    assert page_for("mbtiles", Path("out/a.mbtiles"), grid, "png") is None


def test_staged_hook_adds_a_dzi_page_as_a_new_entry(tmp_path):
    (tmp_path / "photo_files").mkdir()
    added = pyramidd_output_staged(staging=tmp_path, output=Path("/final/photo.dzi"), layout="dzi",
                                   grid=Grid(300, 200, 254, 1), options=BuildOptions())
    assert added == ["photo.html"] and (tmp_path / "photo.html").is_file()


def test_staged_hook_puts_a_map_page_inside_the_tile_folder(tmp_path):
    (tmp_path / "m").mkdir()
    added = pyramidd_output_staged(staging=tmp_path, output=Path("/final/m"), layout="xyz",
                                   grid=Grid(300, 200, 256, 0, "onetile"),
                                   options=BuildOptions(layout="xyz"))
    assert added == [] and (tmp_path / "m" / "index.html").is_file()


def test_staged_hook_writes_a_graph_page_without_a_grid(tmp_path):
    (tmp_path / "net").mkdir()
    added = pyramidd_output_staged(staging=tmp_path, output=Path("/final/net"),
                                   layout="graph-json", grid=None, options=BuildOptions())
    assert added == [] and "sigma" in (tmp_path / "net" / "index.html").read_text()


def test_staged_hook_can_be_turned_off(tmp_path):
    added = pyramidd_output_staged(staging=tmp_path, output=Path("/final/p.dzi"), layout="dzi",
                                   grid=Grid(300, 200, 254, 1),
                                   options=BuildOptions(extra={"viewer": False}))
    assert added is None and list(tmp_path.iterdir()) == []


def test_missing_libraries_skip_the_page_not_the_build(tmp_path, monkeypatch):
    monkeypatch.setenv("PYRAMIDD_VIEWER_ASSETS", str(tmp_path / "nowhere"))
    monkeypatch.setattr(assets, "node_modules", lambda: (_ for _ in ()).throw(
        ViewerAssetsMissing("run scripts/setup")))
    assets.library_text.cache_clear()
    assets.osd_nav_images.cache_clear()
    try:
        added = pyramidd_output_staged(staging=tmp_path, output=Path("/final/p.dzi"), layout="dzi",
                                       grid=Grid(300, 200, 254, 1), options=BuildOptions())
    finally:
        assets.library_text.cache_clear()
        assets.osd_nav_images.cache_clear()
    assert added is None and list(tmp_path.iterdir()) == []


def test_assets_missing_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv("PYRAMIDD_VIEWER_ASSETS", str(tmp_path))
    monkeypatch.setattr(assets, "__file__", str(tmp_path / "x" / "assets.py"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ViewerAssetsMissing, match="scripts/setup"):
        assets.node_modules()


def make_folder(root: Path) -> None:
    write_page(root, dzi_page("photo", Grid(1000, 700, 254, 1), "jpg"))
    (root / "photo.dzi").write_text("<Image/>")
    write_page(root, map_page("tms", "map", Grid(600, 400, 256, 0, "onetile"), "png"))
    (root / "sub").mkdir()
    write_page(root / "sub", graph_page("net"))
    (root / "old.dzi").write_text("<Image/>")
    (root / "tiles.mbtiles").write_bytes(b"")
    (root / ".photo2.dzi.pyramidd-staging-1-abcd").mkdir()
    (root / "photo_files" / "9").mkdir(parents=True)


def test_listing_finds_every_pyramid_and_nothing_else(tmp_path):
    make_folder(tmp_path)
    found = {(p.name, p.layout, p.href) for p in find_pyramids(tmp_path)}
    assert found == {
        ("photo", "dzi", "photo.html"),
        ("map", "tms", "map/"),
        ("net", "graph", "sub/net/"),
        ("old", "dzi", "old.dzi"),
        ("tiles", "mbtiles", "tiles.mbtiles"),
    }
    page = listing_html(tmp_path, prefix="/outputs/")
    assert 'href="/outputs/photo.html"' in page and 'src="/outputs/map/0/0/0.png"' in page
    assert "staging" not in page


def test_outputs_app_serves_listing_files_and_hides_staging(tmp_path):
    from starlette.testclient import TestClient

    from pyramidd.viewer.http import outputs_app

    make_folder(tmp_path)
    (tmp_path / ".photo2.dzi.pyramidd-staging-1-abcd" / "secret").write_text("x")
    client = TestClient(outputs_app({"photos": tmp_path}))
    listing = client.get("/photos/")
    assert listing.status_code == 200 and 'href="photo.html"' in listing.text
    assert client.get("/photos/photo.html").text.startswith("<!doctype html>")
    assert "pyramidd-layout" in client.get("/photos/map/").text
    assert client.get("/photos/.photo2.dzi.pyramidd-staging-1-abcd/secret").status_code == 404
    assert client.get("/photos/../etc/passwd").status_code == 404
    assert client.get("/", follow_redirects=False).headers["location"].endswith("/photos/")


def test_graph_pages_are_linked_to_the_query_api(tmp_path):
    from starlette.testclient import TestClient

    from pyramidd.viewer.http import outputs_app

    write_page(tmp_path, graph_page("net"))
    client = TestClient(outputs_app({"graphs": tmp_path}, graph_api={"graphs": "/graph"}))
    assert 'href="net/?api=/graph/net"' in client.get("/graphs/").text
    assert 'href="net/"' in listing_html(tmp_path)


@pytest.mark.parametrize("layout,page", [("dzi", "photo.html"), ("xyz", "photo/index.html")])
def test_pyramidd_build_writes_the_page_with_the_pyramid(tmp_path, layout, page):
    import os
    import subprocess
    import sys

    from pyramidd.testing import gradient, write_image

    env = dict(os.environ)
    source = write_image(tmp_path / "in.png", gradient(300, 200))
    subprocess.run([sys.executable, "-m", "pyramidd.cli", "build", str(source),
                    str(tmp_path / "out" / "photo"), "--layout", layout, "--workers", "1"],
                   check=True, capture_output=True, timeout=120, env=env)
    text = (tmp_path / "out" / page).read_text()
    assert f'<meta name="pyramidd-layout" content="{layout}">' in text
    assert not [p for p in (tmp_path / "out").iterdir() if "staging" in p.name]


def test_disabling_the_viewer_plugin_builds_without_a_page(tmp_path):
    import subprocess
    import sys

    from pyramidd.testing import gradient, write_image

    source = write_image(tmp_path / "in.png", gradient(300, 200))
    subprocess.run([sys.executable, "-m", "pyramidd.cli", "build", str(source),
                    str(tmp_path / "out" / "photo"), "--disable-plugin", "viewer", "--workers", "1"],
                   check=True, capture_output=True, timeout=120)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["photo.dzi", "photo_files"]


def test_a_rebuild_replaces_the_orphaned_page_and_keeps_a_users_file(tmp_path):
    # Deleting NAME.dzi and NAME_files to build again is ordinary; the page they left
    # must not fail the rebuild after all its work ("x.html appeared while the build
    # ran"). A NAME.html pyramidd did not write is the user's: kept, and no page.
    import shutil
    import subprocess
    import sys

    from pyramidd.testing import gradient, write_image

    source = write_image(tmp_path / "in.png", gradient(300, 200))
    out = tmp_path / "out"

    def build(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "pyramidd.cli", "build", str(source),
                               str(out / "photo"), "--workers", "1", *extra],
                              capture_output=True, text=True, timeout=120)

    assert build().returncode == 0
    page = out / "photo.html"
    page.write_text(page.read_text().replace("<title>", "<title>stale "))
    (out / "photo.dzi").unlink()
    shutil.rmtree(out / "photo_files")
    r = build()
    assert r.returncode == 0, r.stderr
    assert "stale" not in page.read_text() and (out / "photo.dzi").is_file()
    # Still refused with the pyramid itself there
    r = build()
    assert r.returncode == 2 and "photo_files already exists" in r.stderr
    # The user's own page
    (out / "photo.dzi").unlink()
    shutil.rmtree(out / "photo_files")
    page.write_text("<html>my notes</html>")
    r = build()
    assert r.returncode == 0, r.stderr
    assert page.read_text() == "<html>my notes</html>" and (out / "photo.dzi").is_file()
    assert "is not a page pyramidd wrote" in r.stderr
    assert not [p for p in out.iterdir() if "staging" in p.name]


def test_staged_hook_page_of_an_earlier_build_is_ours(tmp_path):
    from pyramidd.viewer.pages import is_our_page

    page = write_page(tmp_path, page_for("dzi", tmp_path / "a.dzi", Grid(300, 200, 254, 1), "jpg"))
    assert is_our_page(page)
    (tmp_path / "mine.html").write_text("<html></html>")
    (tmp_path / "link.html").symlink_to(page)
    assert not is_our_page(tmp_path / "mine.html") and not is_our_page(tmp_path / "link.html")
    assert not is_our_page(tmp_path / "absent.html") and not is_our_page(tmp_path)
