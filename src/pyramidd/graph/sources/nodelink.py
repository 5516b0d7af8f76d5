"""Graph JSON: graphology / sigma.js and networkx node-link, streamed element by element.

- graphology (``graph.export()``): ``{"attributes", "options", "nodes": [{"key",
  "attributes": {"x", "y", ...}}], "edges": [{"key", "source", "target", "attributes"}]}``;
  sigma's older flat form ``{"nodes": [{"id", "x", "y", ...}], "edges": [...]}`` too.
- node-link (``networkx.node_link_data``): ``{"directed", "multigraph", "graph",
  "nodes": [{"id", "x", "y" | "pos": [x, y], ...}], "links" | "edges": [{"source",
  "target", ...}]}``.

Both dialects are read by one reader: a node's id is ``key`` or ``id``, its fields are
its ``attributes`` object if it has one, else the node object itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

from .base import EDGE, NODE, READERS, CountingFile, GraphSource, Record, head
from .jsonstream import iter_members


def _is_json(path: Path) -> str:
    if not path.is_file() or path.suffix.lower() != ".json":
        return ""
    text = head(path, 65536).lstrip()
    return text if text.startswith("{") and '"nodes"' in text else ""


class GraphologyFormat:
    """graphology / sigma.js JSON (``.json`` with ``"nodes"`` whose elements have ``"key"``
    or ``"attributes"``)."""

    name = "graphology-json"
    priority = 1  # asked before node-link: its marks are more specific

    def probe(self, path: Path) -> GraphSource | None:
        text = _is_json(path)
        if text and ('"key"' in text or '"attributes"' in text) and '"links"' not in text:
            return GraphSource(path, self.name)
        return None


class NodeLinkFormat:
    """networkx node-link JSON (``.json`` with ``"nodes"`` and ``"links"``/``"edges"``)."""

    name = "node-link-json"
    priority = 0

    def probe(self, path: Path) -> GraphSource | None:
        return GraphSource(path, self.name) if _is_json(path) else None


GRAPHOLOGY = GraphologyFormat()
NODE_LINK = NodeLinkFormat()


def read(source: GraphSource, progress: Callable[[int], None]) -> Iterator[Record]:
    """Stream the elements of ``nodes`` and ``edges``/``links``."""
    with CountingFile(source.path, progress) as f:
        for key, item, element in iter_members(f, {"nodes", "edges", "links"}, source.path.name):
            if not element:
                continue
            if not isinstance(item, dict):
                item = {"id": item} if key == "nodes" else {}
            if key == "nodes":
                yield _node(item)
            else:
                yield _edge(item)


def _fields(item: dict[str, Any]) -> dict[str, Any]:
    attrs = item.get("attributes")
    if isinstance(attrs, dict):
        out = {k: v for k, v in item.items() if k not in ("attributes", "key", "id")}
        out.update(attrs)
        return out
    return {k: v for k, v in item.items() if k not in ("key", "id")}


def _node(item: dict[str, Any]) -> Record:
    ident = item.get("key", item.get("id"))
    attrs = _fields(item)
    x, y = attrs.pop("x", None), attrs.pop("y", None)
    pos = attrs.pop("pos", None)
    if x is None and y is None and isinstance(pos, (list, tuple)) and len(pos) >= 2:
        x, y = pos[0], pos[1]
    elif pos is not None:
        attrs["pos"] = pos
    return (NODE, None if ident is None else str(ident), x, y, attrs)


def _edge(item: dict[str, Any]) -> Record:
    # The ends are the edge's own source and target: an attribute of that name (from
    # graphology's "attributes") stays an attribute, and does not move the edge.
    attrs = _fields({k: v for k, v in item.items() if k not in ("source", "target")})
    src, tgt = item.get("source"), item.get("target")
    ident = item.get("key", item.get("id"))
    return (
        EDGE,
        None if src is None else str(src),
        None if tgt is None else str(tgt),
        None if ident is None else str(ident),
        attrs,
    )


READERS[GRAPHOLOGY.name] = read
READERS[NODE_LINK.name] = read
