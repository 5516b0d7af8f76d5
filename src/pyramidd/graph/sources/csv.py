"""A CSV pair: a nodes file (id, x, y, ...) and an edges file (source, target, ...).

Recognised as a folder holding ``nodes.csv`` and ``edges.csv``, or a file named
``NAME.nodes.csv`` / ``NAME_nodes.csv`` / ``nodes.csv`` with the edges file beside it
(``nodes`` replaced by ``edges`` in the name). Headers are matched without regard to
case (Gephi writes ``Id``, ``Source``, ``Target``); other columns become attributes.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Callable, Iterator

from ...errors import InputError
from .base import EDGE, NODE, READERS, CountingFile, GraphSource, Record, number

ID_COLUMNS = ("id", "key", "node", "name")
SOURCE_COLUMNS = ("source", "from", "src")
TARGET_COLUMNS = ("target", "to", "dst")


def _pair(path: Path) -> tuple[Path, Path] | None:
    """The nodes and edges files of ``path``; :class:`InputError` for a nodes file
    (or a folder holding one) whose edges file is missing."""
    if path.is_dir():
        nodes, edges = path / "nodes.csv", path / "edges.csv"
    else:
        name = path.name
        if not (path.is_file() and name.lower().endswith(".csv") and "nodes" in name):
            return None
        nodes, edges = path, path.with_name(name[::-1].replace("sedon", "segde", 1)[::-1])
    if not nodes.is_file():
        return None
    if not edges.is_file():
        raise InputError(f"{path.name}: a graph's nodes file needs its edges file beside it:"
                         f" {edges.name} is missing (it may hold only a header)")
    return nodes, edges


class CSVFormat:
    """Nodes and edges CSV files (a folder, or ``*nodes.csv`` beside ``*edges.csv``)."""

    name = "csv"
    priority = 0

    def probe(self, path: Path) -> GraphSource | None:
        pair = _pair(path)
        return GraphSource(pair[0], self.name, (pair[1],)) if pair else None


CSV = CSVFormat()


def _column(header: list[str], names: tuple[str, ...], file: Path, what: str) -> int:
    lower = [h.strip().lower() for h in header]
    for name in names:
        if name in lower:
            return lower.index(name)
    raise InputError(
        f"{file.name}: no {what} column (looked for {', '.join(names)}); "
        f"the header is {', '.join(header)}"
    )


def read(source: GraphSource, progress: Callable[[int], None]) -> Iterator[Record]:
    """Stream the nodes file, then the edges file, row by row."""
    import csv as _csv  # here: every build registers this format

    nodes_path, edges_path = source.path, source.extra[0]
    base = 0
    with CountingFile(nodes_path, progress) as f:
        rows = _csv.reader(io.TextIOWrapper(io.BufferedReader(f, 1 << 20), encoding="utf-8-sig", newline=""))  # type: ignore[arg-type]
        header = next(rows, None)
        if header is None:
            raise InputError(f"{nodes_path.name}: empty nodes file; it needs a header id,x,y")
        i_id = _column(header, ID_COLUMNS, nodes_path, "node id")
        i_x = _column(header, ("x",), nodes_path, "x")
        i_y = _column(header, ("y",), nodes_path, "y")
        others = [(i, h) for i, h in enumerate(header) if i not in (i_id, i_x, i_y)]
        for row in rows:
            if not row:
                continue
            get = lambda i: row[i] if i < len(row) else None  # noqa: E731
            attrs = {h: number(get(i)) for i, h in others if get(i) not in (None, "")}
            yield (NODE, get(i_id), get(i_x) or None, get(i_y) or None, attrs)
        base = f.seen
    with CountingFile(edges_path, progress, base) as f:
        rows = _csv.reader(io.TextIOWrapper(io.BufferedReader(f, 1 << 20), encoding="utf-8-sig", newline=""))  # type: ignore[arg-type]
        header = next(rows, None)
        if header is None:
            return
        i_s = _column(header, SOURCE_COLUMNS, edges_path, "source")
        i_t = _column(header, TARGET_COLUMNS, edges_path, "target")
        lower = [h.strip().lower() for h in header]
        i_id = lower.index("id") if "id" in lower else -1
        others = [(i, h) for i, h in enumerate(header) if i not in (i_s, i_t, i_id)]
        for row in rows:
            if not row:
                continue
            get = lambda i: row[i] if 0 <= i < len(row) else None  # noqa: E731
            attrs = {h: number(get(i)) for i, h in others if get(i) not in (None, "")}
            yield (EDGE, get(i_s), get(i_t), get(i_id), attrs)


READERS[CSV.name] = read
