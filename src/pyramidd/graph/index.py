"""The index of a graph pyramid: the tree, written last, loaded once and cached.

``index.json`` holds the graph's bounds and, for every tree node by quadkey, whether
it is a leaf, its file (``null`` for an empty leaf), the nodes and edges in the file
and the objects stored under it. Loading it builds a :class:`GraphIndex` whose
lookups descend from the root, O(log₄ n) for n leaves.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from .quadtree import Rect, key_rect, normalise_rect, point_quadrant, rects_intersect

FORMAT = "pyramidd-graph"
VERSION = 1
INDEX_NAME = "index.json"
TILES_DIR = "tiles"


@dataclass
class Tile:
    """One tree node as the index describes it."""

    key: str
    rect: Rect
    leaf: bool
    file: str | None
    nodes: int
    edges: int
    stored: int
    bytes: int = 0
    children: list["Tile"] = field(default_factory=list)

    @property
    def level(self) -> int:
        return len(self.key)

    @property
    def count(self) -> int:
        """Objects a renderer draws for this file (nodes, carried ones too, and edges)."""
        return self.nodes + self.edges


@dataclass
class GraphIndex:
    """A loaded index."""

    path: Path
    meta: dict[str, Any]
    tiles: dict[str, Tile]

    @property
    def root(self) -> Tile:
        return self.tiles[""]

    @property
    def bounds(self) -> Rect:
        return tuple(self.meta["bounds"])  # type: ignore[return-value]

    @property
    def bag_size(self) -> int:
        return int(self.meta["bag_size"])

    @classmethod
    def load(cls, path: Path) -> "GraphIndex":
        """Read ``index.json`` (the file or the pyramid folder holding it)."""
        path = Path(path)
        if path.is_dir():
            path = path / INDEX_NAME
        try:
            meta = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: not a readable graph pyramid index ({exc})") from None
        if meta.get("format") != FORMAT:
            raise InputError(f"{path}: not a pyramidd graph index")
        bounds = tuple(meta["bounds"])
        tiles: dict[str, Tile] = {}
        for key, t in meta.pop("tiles").items():
            tiles[key] = Tile(
                key, key_rect(bounds, key), t["leaf"], t["file"], t["nodes"], t["edges"],
                t["stored"], t.get("bytes", 0),
            )
        for key, tile in tiles.items():
            if not tile.leaf:
                tile.children = [tiles[key + str(d)] for d in range(4)]
        return cls(path, meta, tiles)

    def locate(self, x: float, y: float) -> Tile:
        """The leaf whose region holds the point (graph coordinates): a descent."""
        tile = self.root
        while not tile.leaf:
            tile = tile.children[point_quadrant(x, y, tile.rect)]
        return tile

    def intersecting(self, rect: Rect) -> list[Tile]:
        """Leaves whose region meets ``rect`` (graph coordinates), in quadkey order."""
        out, stack = [], [self.root]
        while stack:
            t = stack.pop()
            if not rects_intersect(t.rect, rect):
                continue
            if t.leaf:
                out.append(t)
            else:
                stack.extend(reversed(t.children))
        return out

    def describe(self) -> dict[str, Any]:
        """What a client opening the graph is told."""
        b = self.bounds
        return {
            "bounds": list(b),
            "width": b[2] - b[0],
            "height": b[3] - b[1],
            "aspect": (b[2] - b[0]) / (b[3] - b[1]),
            "nodes": self.meta["nodes"],
            "edges": self.meta["edges"],
            "levels": self.meta["levels"],
            "leaves": self.meta["leaves"],
            "bag_size": self.bag_size,
            "capacity": self.meta["capacity"],
        }

    def nrect(self, tile: Tile) -> Rect:
        return normalise_rect(self.bounds, tile.rect)


def write_index(path: Path, meta: dict[str, Any], tiles: dict[str, dict[str, Any]]) -> int:
    """Write ``index.json`` atomically and durably; returns its size."""
    data = json.dumps({"format": FORMAT, "version": VERSION, **meta, "tiles": tiles},
                      separators=(",", ":")).encode()
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return len(data)


class IndexCache:
    """Indexes loaded once per pyramid and kept while the file is unchanged."""

    def __init__(self) -> None:
        self._cache: dict[Path, tuple[float, GraphIndex]] = {}

    def get(self, folder: Path) -> GraphIndex:
        path = Path(folder) / INDEX_NAME
        try:
            mtime = path.stat().st_mtime_ns
        except OSError:
            raise InputError(f"{folder.name}: no graph pyramid there") from None
        hit = self._cache.get(path)
        if hit and hit[0] == mtime:
            return hit[1]
        index = GraphIndex.load(path)
        self._cache[path] = (mtime, index)
        return index
