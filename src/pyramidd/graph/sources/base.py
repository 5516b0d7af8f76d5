"""What a graph source yields, and the plain-data handle a worker reads it through."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Protocol

if TYPE_CHECKING:
    import xml.etree.ElementTree as ET

#: Record kinds.
NODE = 0
EDGE = 1

#: ``(NODE, id, x, y, attrs)`` or ``(EDGE, source, target, id_or_None, attrs)``.
#: ``x``/``y`` are whatever the file holds (``None`` when absent, text or a number);
#: the read stage checks them. ``attrs`` holds the rest, JSON-serialisable.
Record = tuple[int, Any, Any, Any, dict[str, Any]]

#: Readers by format name: ``reader(path, progress)`` yields records; ``progress(n)``
#: is called now and then with the bytes of input consumed so far.
READERS: dict[str, Callable[[Path, Callable[[int], None]], Iterator[Record]]] = {}


@dataclass(frozen=True)
class GraphSource:
    """A recognised graph input. Made in the coordinator, pickled to the read worker."""

    path: Path
    format: str
    #: Other files the input consists of (the edges file of a CSV pair).
    extra: tuple[Path, ...] = field(default=())

    @property
    def size(self) -> int:
        """Bytes of input, for progress."""
        return sum(p.stat().st_size for p in (self.path, *self.extra) if p.is_file())

    def records(self, progress: Callable[[int], None] = lambda n: None) -> Iterator[Record]:
        """Stream the records. Runs in a worker; never holds the whole file."""
        return READERS[self.format](self, progress)  # type: ignore[arg-type]


class GraphFormat(Protocol):
    """A kind of graph file a plugin reads (registered as ``graph-source``)."""

    name: str
    #: Higher is asked first.
    priority: int

    def probe(self, path: Path) -> GraphSource | None:
        """Return a :class:`GraphSource` if this format reads ``path``, else ``None``.

        Runs in the coordinator and reads at most the head of the file.
        """
        ...


def head(path: Path, n: int = 65536) -> str:
    """The first ``n`` bytes of a file as text (empty if it cannot be read)."""
    try:
        with open(path, "rb") as f:
            return f.read(n).decode("utf-8", "replace").removeprefix("\ufeff")  # a BOM
    except OSError:
        return ""


@dataclass(frozen=True)
class XmlFormat:
    """An XML graph format, known by its suffix or, in a plain ``.xml`` file, by the
    opening of its root element (``<graphml``, ``<gexf``)."""

    name: str
    suffix: str
    root: str
    priority: int = 0

    def probe(self, path: Path) -> GraphSource | None:
        """A :class:`GraphSource` if ``path`` is this format, else ``None``."""
        if not path.is_file():
            return None
        suffix = path.suffix.lower()
        if suffix == self.suffix or (suffix == ".xml" and self.root in head(path, 4096)):
            return GraphSource(path, self.name)
        return None


def finished_elements(f: Any) -> Iterator[tuple[ET.Element, ET.Element | None]]:
    """Each XML element of ``f`` once its end tag is read, with its parent (``None`` for
    the root). A caller that is done with an element removes it from its parent, so
    memory stays flat however large the file."""
    import xml.etree.ElementTree as ET  # here: every build registers the graph formats

    stack: list[ET.Element] = []
    for event, elem in ET.iterparse(f, events=("start", "end")):
        if event == "start":
            stack.append(elem)
            continue
        stack.pop()
        yield elem, stack[-1] if stack else None


def local(tag: str) -> str:
    """An XML tag without its namespace."""
    return tag.rpartition("}")[2]


def number(text: Any) -> Any:
    """An attribute value as int or float when it looks like one, else unchanged."""
    if not isinstance(text, str):
        return text
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


class CountingFile(io.RawIOBase):
    """A binary file that reports bytes read, for progress (usable by ``iterparse``,
    ``TextIOWrapper`` through ``io.BufferedReader``, and plain ``read``)."""

    def __init__(self, path: Path, progress: Callable[[int], None], base: int = 0) -> None:
        super().__init__()
        self._f = open(path, "rb", buffering=0)
        self._progress = progress
        self._base = base
        self.seen = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = self._f.readinto(b)
        self.seen += n or 0
        self._progress(self._base + self.seen)
        return n  # type: ignore[return-value]

    def close(self) -> None:
        self._f.close()
        super().close()
