"""GraphML with positions in ``x``/``y`` data keys (networkx, Gephi) or yEd geometry."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterator

from ...errors import InputError
from .base import (
    EDGE,
    NODE,
    READERS,
    CountingFile,
    GraphSource,
    Record,
    XmlFormat,
    finished_elements,
    local,
    number,
)

if TYPE_CHECKING:
    import xml.etree.ElementTree as ET

#: Data key names taken as coordinates (compared lower-case).
X_NAMES = ("x", "pos_x", "posx")
Y_NAMES = ("y", "pos_y", "posy")


#: GraphML (``.graphml``, or XML whose root is ``<graphml>``).
GRAPHML = XmlFormat("graphml", ".graphml", "<graphml")


def read(source: GraphSource, progress: Callable[[int], None]) -> Iterator[Record]:
    """Stream nodes and edges with ``iterparse``, dropping each element once read."""
    import xml.etree.ElementTree as ET  # here: every build registers this format

    keys: dict[str, tuple[str, str]] = {}  # key id -> (for, attr.name)
    with CountingFile(source.path, progress) as f:
        try:
            for elem, parent in finished_elements(f):
                tag = local(elem.tag)
                if tag == "key":
                    keys[elem.get("id", "")] = (
                        elem.get("for", "all"),
                        elem.get("attr.name") or elem.get("yfiles.type") or elem.get("id", ""),
                    )
                elif tag == "node":
                    yield _node(elem, keys)
                elif tag == "edge":
                    yield _edge(elem, keys)
                else:
                    continue
                if parent is not None:
                    parent.remove(elem)
        except ET.ParseError as exc:
            raise InputError(
                f"{source.path.name}: not well-formed GraphML ({exc}); check the file is complete"
            ) from None


def _data(elem: ET.Element, keys: dict[str, tuple[str, str]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for child in elem:
        if local(child.tag) != "data":
            continue
        name = keys.get(child.get("key", ""), ("", child.get("key", "")))[1]
        geometry = next((g for g in child.iter() if local(g.tag) == "Geometry"), None)
        if geometry is not None:  # yEd: top-left corner and size; the node sits at the centre
            try:
                out["x"] = float(geometry.get("x", "nan")) + float(geometry.get("width", 0)) / 2
                out["y"] = float(geometry.get("y", "nan")) + float(geometry.get("height", 0)) / 2
            except ValueError:
                out["x"] = out["y"] = geometry.get("x")
            label = next((g for g in child.iter() if local(g.tag) == "NodeLabel"), None)
            if label is not None and (label.text or "").strip():
                out["label"] = label.text.strip()
            continue
        if len(child):
            continue  # other structured yEd data: not an attribute a renderer uses
        out[name] = number(child.text or "")
    return out


def _pop_coord(attrs: dict[str, Any], names: tuple[str, ...]) -> Any:
    for key in list(attrs):
        if key.lower() in names:
            return attrs.pop(key)
    return None


def _node(elem: ET.Element, keys: dict[str, tuple[str, str]]) -> Record:
    attrs = _data(elem, keys)
    x = _pop_coord(attrs, X_NAMES)
    y = _pop_coord(attrs, Y_NAMES)
    return (NODE, elem.get("id"), x, y, attrs)


def _edge(elem: ET.Element, keys: dict[str, tuple[str, str]]) -> Record:
    return (EDGE, elem.get("source"), elem.get("target"), elem.get("id"), _data(elem, keys))


READERS[GRAPHML.name] = read
