"""Entry points of one group, read from the distributions on ``sys.path``.

What :func:`importlib.metadata.entry_points` answers, found the way it finds them,
without importing :mod:`importlib.metadata`: that module brings :mod:`email`,
:mod:`zipfile`, :mod:`csv` and more, 20-25 ms of every process that loads plugins (a
build's coordinator, the fork server, every worker started on its own), all of it on
the path to a build's first tile. A path this reader does not cover (a zip file on
``sys.path``, an import hook that lists distributions of its own) is left to
:mod:`importlib.metadata`.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class EntryPoint:
    """One ``name = module:attr`` line of a distribution's ``entry_points.txt``."""

    name: str
    value: str

    def load(self) -> Any:
        """Import the module and return the attribute the entry point names."""
        module, _, attr = self.value.partition("[")[0].partition(":")
        obj = importlib.import_module(module.strip())
        for part in filter(None, attr.strip().split(".")):
            obj = getattr(obj, part)
        return obj


def entry_points(group: str) -> list[EntryPoint]:
    """The entry points of ``group``, in :func:`importlib.metadata.entry_points` order:
    ``sys.path`` order, the first distribution of each name only."""
    found = _scan(group)
    if found is None:
        from importlib import metadata

        return [EntryPoint(ep.name, ep.value) for ep in metadata.entry_points(group=group)]
    return found


def _scan(group: str) -> list[EntryPoint] | None:
    """The entry points of ``group`` in the ``*.dist-info`` and ``*.egg-info`` folders
    of ``sys.path``; ``None`` where only :mod:`importlib.metadata` knows how to look."""
    from importlib.machinery import PathFinder

    if any(hasattr(finder, "find_distributions") and finder is not PathFinder
           for finder in sys.meta_path):
        return None
    seen: set[str] = set()
    found: list[EntryPoint] = []
    for entry in sys.path:
        folder = entry or "."
        if os.path.isfile(folder):  # a zip archive on the path
            return None
        try:
            children = os.listdir(folder)
        except OSError:
            continue
        for child in children:
            stem, _, suffix = child.rpartition(".")
            suffix = suffix.lower()
            if suffix == "egg":  # an egg's metadata is inside it
                return None
            if suffix not in ("dist-info", "egg-info"):
                continue
            # A distribution's first folder on the path wins, as importlib.metadata has it.
            name = _normalize(stem.partition("-")[0])
            if name in seen:
                continue
            seen.add(name)
            try:
                with open(os.path.join(folder, child, "entry_points.txt"), encoding="utf-8") as f:
                    text = f.read()
            except OSError:  # none, or an egg-info file rather than a folder
                continue
            found.extend(_parse(text, group))
    return found


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _parse(text: str, group: str) -> list[EntryPoint]:
    """The ``name = value`` lines of section ``[group]`` of an ``entry_points.txt``."""
    section = None
    points = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
        elif section == group and "=" in line:
            name, _, value = line.partition("=")
            points.append(EntryPoint(name.strip(), value.strip()))
    return points
