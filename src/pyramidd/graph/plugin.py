"""Registration of the built-in graph formats (called from :mod:`pyramidd.builtin`).

Kinds: ``graph-source`` (the readers of :mod:`.sources`) and ``graph-sink`` (the
``graph-json`` layout). A third party adds a graph format the same way, from its own
``pyramidd_register`` hook: ``registry.add("graph-source", MyFormat())``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class GraphJsonLayout:
    """Sharded, sparsified graph JSON: a quadtree of tile files and ``index.json``."""

    name = "graph-json"

    @staticmethod
    def probe(path: Path, registry: Any) -> Any:
        """The graph source reading ``path``, or ``None`` (see :func:`.build.probe`)."""
        from .build import probe

        return probe(path, registry)

    @staticmethod
    async def build(input: Path, output: Path, options: dict[str, Any], *, pool: Any,
                    progress: Any = None) -> dict[str, Any]:
        """Build the pyramid (see :func:`.build.build_graph`)."""
        from .build import build_graph

        return await build_graph(input, output, options, pool=pool, progress=progress)


GRAPH_JSON = GraphJsonLayout()


def register(registry: Any) -> None:
    """Add the built-in graph sources and the ``graph-json`` layout."""
    from .sources import BUILTINS

    for fmt in BUILTINS:
        registry.add("graph-source", fmt)
    registry.add("graph-sink", GRAPH_JSON)
