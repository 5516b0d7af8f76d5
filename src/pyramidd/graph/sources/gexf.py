"""GEXF with ``viz:position`` (Gephi)."""

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

#: GEXF 1.x (``.gexf``), positions from ``<viz:position x= y=>``.
GEXF = XmlFormat("gexf", ".gexf", "<gexf")


def read(source: GraphSource, progress: Callable[[int], None]) -> Iterator[Record]:
    """Stream ``<node>`` and ``<edge>`` elements, dropping each once read."""
    import xml.etree.ElementTree as ET  # here: every build registers this format

    # (class, attribute id) -> title: nodes and edges number their attributes apart
    titles: dict[tuple[str, str], str] = {}
    with CountingFile(source.path, progress) as f:
        try:
            for elem, parent in finished_elements(f):
                tag = local(elem.tag)
                if tag == "attribute":
                    kind = parent.get("class", "node") if parent is not None else "node"
                    titles[(kind, elem.get("id", ""))] = elem.get("title") or elem.get("id", "")
                    continue
                if parent is None:
                    continue
                if tag == "node" and local(parent.tag) == "nodes":
                    yield _node(elem, titles)
                elif tag == "edge" and local(parent.tag) == "edges":
                    yield _edge(elem, titles)
                else:
                    continue
                parent.remove(elem)
        except ET.ParseError as exc:
            raise InputError(
                f"{source.path.name}: not well-formed GEXF ({exc}); check the file is complete"
            ) from None


def _attvalues(elem: ET.Element, titles: dict[tuple[str, str], str], kind: str,
               attrs: dict[str, Any]) -> None:
    for child in elem:
        if local(child.tag) == "attvalues":
            for av in child:
                key = av.get("for") or av.get("id") or ""
                attrs[titles.get((kind, key), key)] = number(av.get("value", ""))


def _node(elem: ET.Element, titles: dict[tuple[str, str], str]) -> Record:
    attrs: dict[str, Any] = {}
    if elem.get("label") is not None:
        attrs["label"] = elem.get("label")
    x = y = None
    for child in elem:
        tag = local(child.tag)
        if tag == "position":
            x, y = child.get("x"), child.get("y")
        elif tag == "size":
            attrs["size"] = number(child.get("value", ""))
        elif tag == "color":
            rgb = [child.get(c, "0") for c in "rgb"]
            alpha = child.get("a")
            attrs["color"] = (
                f"rgba({','.join(rgb)},{alpha})" if alpha is not None else f"rgb({','.join(rgb)})"
            )
    _attvalues(elem, titles, "node", attrs)
    return (NODE, elem.get("id"), x, y, attrs)


def _edge(elem: ET.Element, titles: dict[tuple[str, str], str]) -> Record:
    attrs: dict[str, Any] = {}
    for name in ("label", "weight", "type", "kind"):
        if elem.get(name) is not None:
            attrs[name] = number(elem.get(name))
    _attvalues(elem, titles, "edge", attrs)
    return (EDGE, elem.get("source"), elem.get("target"), elem.get("id"), attrs)


READERS[GEXF.name] = read
