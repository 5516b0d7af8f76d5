"""Graph source plugins: laid-out graphs read as streams of node and edge records.

Each format is an object with ``name``, ``priority`` and ``probe(path)`` registered as
kind ``graph-source``; ``probe`` returns a :class:`~.base.GraphSource` (plain data,
pickled to the worker that reads it) or ``None``.
"""

from __future__ import annotations

from .base import EDGE, NODE, GraphFormat, GraphSource, Record
from .csv import CSV
from .gexf import GEXF
from .graphml import GRAPHML
from .nodelink import GRAPHOLOGY, NODE_LINK

#: The built-in graph formats, registered like a third party's.
BUILTINS: tuple[GraphFormat, ...] = (GRAPHML, GEXF, GRAPHOLOGY, NODE_LINK, CSV)

__all__ = ["BUILTINS", "EDGE", "NODE", "GraphFormat", "GraphSource", "Record"]
