"""Package attributes imported on first use (PEP 562).

A render worker imports the package of the one source and the one sink its build
pickles from, and loads every plugin; with eager ``__init__`` imports it paid for
every format of both packages (tifffile, XML and URL libraries, the viewer pages) at
every start.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any, Callable


def exports(
    package: str, names: dict[str, str], *, all_as: str | None = None
) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``package.names[attr]`` and returns its
    ``attr``; with ``all_as``, that name is all of them as a tuple, in ``names`` order."""

    def attribute(name: str) -> Any:
        if name == all_as:
            return tuple(attribute(n) for n in names)
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(import_module(f"{package}.{names[name]}"), name)

    return attribute
