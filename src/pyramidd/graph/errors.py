"""Errors a graph build or query can raise because of its input or options."""

from __future__ import annotations

import os

from ..errors import InputError, OptionError, OutputError, PyramiddError


class GraphDataError(InputError):
    """The graph has a bad record (no position, NaN coordinate, duplicate id, edge to an
    unknown node) and the profile says ``bad_data = "error"``."""

    kind = "bad-graph-data"


class GraphOptionError(OptionError):
    """A graph build option is out of range."""


class GraphNotFound(PyramiddError):
    """A query named a graph pyramid that is not under the served folder."""

    kind = "graph-not-found"


class StagingRemoved(OutputError):
    """The staging folder a graph build writes in (or files in it) was removed while
    the build was using it: deleted by hand, with the output folder, or by a clean-up."""


def staging_removed(folder: str | os.PathLike[str]) -> StagingRemoved:
    """The error for a build whose staging ``folder`` was removed under it."""
    return StagingRemoved(
        f"{folder} was removed while the graph build was using it (it, its output folder "
        "or files in it were deleted); nothing was written at the output: build again"
    )
