"""The page that lists the pyramids of an output folder.

Pyramids are found by their viewer pages' ``<meta name="pyramidd-...">`` tags, plus
Deep Zoom descriptors without a page and MBTiles files (offered for download). Tile
trees are never walked: a folder whose ``index.html`` is a pyramidd page, a
``NAME_files`` folder and a staging folder are not entered.
"""

from __future__ import annotations

import html
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from .pages import render

_META = re.compile(rb'<meta name="pyramidd-([a-z]+)" content="([^"]*)">')
#: Bytes of a page read to find its meta tags (they come before the embedded library).
_HEAD = 4096
_SKIP_MARKS = (".pyramidd-staging-",)


@dataclass(frozen=True)
class Listed:
    """One pyramid of a folder."""

    name: str
    layout: str
    #: The viewer page (or, without one, the file to open), relative to the folder.
    href: str
    size: str = ""
    thumbnail: str | None = None
    mtime: float = 0.0


def read_metas(page: Path) -> dict[str, str]:
    """The ``pyramidd-*`` meta tags of a page (empty when it is not a pyramidd page)."""
    try:
        with open(page, "rb") as f:
            head = f.read(_HEAD)
    except OSError:
        return {}
    return {k.decode(): html.unescape(v.decode("utf-8", "replace")) for k, v in _META.findall(head)}


def find_pyramids(root: Path, max_depth: int = 3, limit: int = 2000) -> list[Listed]:
    """Pyramids under ``root`` (at most ``max_depth`` folders down), newest first."""
    root = Path(root)
    found: list[Listed] = []

    def rel(path: Path) -> str:
        return path.relative_to(root).as_posix()

    def visit(folder: Path, depth: int) -> None:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            return
        names = {e.name for e in entries}
        for entry in entries:
            if len(found) >= limit:
                return
            path = Path(entry.path)
            if entry.name.startswith(".") or any(m in entry.name for m in _SKIP_MARKS):
                continue
            if entry.is_dir(follow_symlinks=False):
                if entry.name.endswith("_files") or entry.name.isdigit():
                    continue
                metas = read_metas(path / "index.html")
                if metas:
                    found.append(_listed(entry.name, rel(path) + "/", metas, rel(path) + "/", path / "index.html"))
                elif depth < max_depth:
                    visit(path, depth + 1)
            elif entry.name.endswith(".html"):
                metas = read_metas(path)
                if metas:
                    base = rel(path.parent) + "/" if path.parent != root else ""
                    found.append(_listed(entry.name[:-5], rel(path), metas, base, path))
            elif entry.name.endswith(".dzi") and entry.name[:-4] + ".html" not in names:
                found.append(Listed(entry.name[:-4], "dzi", rel(path), mtime=_mtime(path)))
            elif entry.name.endswith(".mbtiles"):
                found.append(Listed(entry.name[:-8], "mbtiles", rel(path), mtime=_mtime(path)))

    visit(root, 0)
    found.sort(key=lambda p: (-p.mtime, p.name))
    return found


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _listed(name: str, href: str, metas: dict[str, str], base: str, page: Path) -> Listed:
    thumb = metas.get("thumbnail")
    return Listed(
        name=name,
        layout=metas.get("layout", "?"),
        href=href,
        size=metas.get("size", ""),
        thumbnail=base + thumb if thumb else None,
        mtime=_mtime(page),
    )


def listing_html(root: Path, prefix: str = "", title: str = "pyramids",
                 graph_api: str | None = None) -> str:
    """The listing page of ``root``. Links are ``prefix`` + the path under ``root``, so
    the page works wherever the folder is mounted (``prefix="/outputs/"``) or as
    ``index.html`` inside it (``prefix=""``). With ``graph_api`` (the URL where the
    service's graph router serves this folder, e.g. ``/graph``), graph pages directly
    in the folder are opened on that API (``NAME/?api=/graph/NAME``)."""
    pyramids = find_pyramids(root)
    cards = []
    for p in pyramids:
        target = prefix + quote(p.href)
        if graph_api and p.layout == "graph" and p.href.count("/") == 1:
            target += "?api=" + quote(f"{graph_api.rstrip('/')}/{p.href.rstrip('/')}")
        href = html.escape(target)
        thumb = (
            f'<img src="{html.escape(prefix + quote(p.thumbnail))}" alt="" loading="lazy">'
            if p.thumbnail else f'<span class="none">{html.escape(p.layout.upper())}</span>'
        )
        cards.append(
            f'<li><a href="{href}">{thumb}<b>{html.escape(p.name)}</b>'
            f'<small>{html.escape(p.layout)}{" · " + html.escape(p.size) if p.size else ""}</small></a></li>'
        )
    body = "\n".join(cards) if cards else '<p class="empty">No pyramids yet.</p>'
    return render("listing.html", TITLE=html.escape(title), COUNT=str(len(pyramids)), ITEMS=body)
