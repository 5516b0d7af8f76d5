"""Errors a graph build or query can raise because of its input or options."""

from __future__ import annotations

from ..errors import InputError, OptionError, PyramiddError


class GraphDataError(InputError):
    """The graph has a bad record (no position, NaN coordinate, duplicate id, edge to an
    unknown node) and the profile says ``bad_data = "error"``."""

    kind = "bad-graph-data"


class GraphOptionError(OptionError):
    """A graph build option is out of range."""


class GraphNotFound(PyramiddError):
    """A query named a graph pyramid that is not under the served folder."""

    kind = "graph-not-found"
