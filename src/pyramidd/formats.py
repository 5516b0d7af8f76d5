"""The contracts a plugin implements: sources, resamplers and sinks.

A plugin registers objects satisfying these protocols through the
:func:`~pyramidd.hookspecs.pyramidd_register` hook. Objects that cross to render
workers (a :class:`Source`, a :class:`Sink`) are pickled once per build, so they hold
plain data (paths, sizes, options), never open files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Protocol, runtime_checkable

import numpy as np

from .grid import Depth, Grid, TileKey
from .options import BuildOptions


# --------------------------------------------------------------------------- sources


@runtime_checkable
class RegionReader(Protocol):
    """An open source in one render worker."""

    def read_region(self, x: int, y: int, w: int, h: int) -> np.ndarray:
        """Pixels of ``[x, x+w) x [y, y+h)`` as a ``(h, w, bands)`` uint8 array.

        The rectangle always lies inside the image. The array may be a view; the
        caller does not write to it.
        """
        ...

    def close(self) -> None:
        """Release files and buffers."""
        ...


@runtime_checkable
class Source(Protocol):
    """A recognised input: its size and band count, and how a worker opens it.

    Made in the coordinator by :meth:`SourceFormat.probe`, pickled to workers.
    ``bands`` is 1 (L), 2 (LA), 3 (RGB) or 4 (RGBA), 8 bits each.
    """

    width: int
    height: int
    bands: int

    def open(self) -> RegionReader:
        """Open for region reads. Runs in a render worker."""
        ...


@runtime_checkable
class PreparedSource(Protocol):
    """A source that must be made ready once per build before workers read it.

    ``prepare`` runs in one render worker (e.g. decodes a PNG into shared memory)
    and returns the source every worker then opens. ``release`` runs in the
    coordinator when the build ends, successful or not.

    A source may also say, as ``decode_bytes``, the most memory ``prepare`` takes;
    the build is then refused up front when that is over its memory budget.
    """

    def prepare(self) -> Source: ...

    def release(self) -> None: ...


class SourceFormat(Protocol):
    """A kind of input a plugin can open."""

    name: str
    #: Higher is asked first. Built-ins use 0; a specialised plugin uses more.
    priority: int

    def probe(self, path: Path, options: BuildOptions) -> Source | None:
        """Return a :class:`Source` if this format opens ``path``, ``None`` if not.

        Runs in the coordinator. Reads only the header. Raises
        :class:`~pyramidd.errors.InputError` when the file is this format but broken
        (so another format is not tried on it).
        """
        ...


# --------------------------------------------------------------------------- resamplers


class Resampler(Protocol):
    """Halves an image: each output pixel from a 2x2 block of the level above.

    ``support`` is how many extra pixels beyond the 2x2 block the filter reads on
    each side (0 for box and nearest). ``reduce`` gets an array of shape
    ``(2h + 2s, 2w + 2s, bands)`` with ``s = support`` (pixels past the image edge
    are copies of the edge) and returns ``(h, w, bands)`` uint8. The result must not
    depend on how the image is cut into tiles: the same pixel gets the same value
    whatever array it arrives in. Runs in render workers.
    """

    name: str
    support: int

    def reduce(self, block: np.ndarray) -> np.ndarray: ...


# --------------------------------------------------------------------------- sinks


@dataclass(frozen=True)
class LayoutRules:
    """What a layout needs from the engine."""

    tile_size: int
    overlap: int
    depth: Depth
    #: Row 0 at the bottom of the image (TMS): the engine builds the pyramid of the
    #: vertically flipped image so that its grid is anchored where the layout's is.
    flip_y: bool = False


@runtime_checkable
class Sink(Protocol):
    """Where one pyramid's tiles go. Made in the coordinator, pickled to workers.

    Life cycle: ``start`` (coordinator) → ``write_tile`` many times (workers) →
    ``finish`` (coordinator, descriptor last, then renamed into place) or ``abort``.
    """

    output: Path

    def start(self) -> None: ...

    def write_tile(self, key: TileKey, pixels: np.ndarray) -> int:
        """Encode and store one tile; return the bytes written. Runs in a worker.

        ``pixels`` is ``(h, w, bands)`` uint8 with the tile rectangle of
        :meth:`Grid.tile_rect`, in the layout's row direction already.
        """
        ...

    def finish(self) -> None: ...

    def abort(self) -> None: ...


class SinkFormat(Protocol):
    """A layout a plugin can write (``dzi``, ``tms``, ``xyz``, ...)."""

    name: str

    def rules(self, options: BuildOptions) -> LayoutRules:
        """Tile size, overlap and depth for these options (defaults filled in)."""
        ...

    def create(
        self, output: Path, grid: Grid, source: Source, options: BuildOptions
    ) -> Sink:
        """Make the sink for one build. Runs in the coordinator; writes nothing yet."""
        ...


def describe(obj: Any) -> Mapping[str, Any]:
    """Plain description of a registered format object, for ``pyramidd plugins``."""
    doc = (type(obj).__doc__ or "").strip().splitlines()
    return {"name": getattr(obj, "name", type(obj).__name__), "summary": doc[0] if doc else ""}
