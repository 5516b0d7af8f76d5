"""XYZ ("slippy map"): the folder ``NAME/z/x/y.ext``, origin top-left.

The layout ``vips dzsave --layout google`` writes, with the order map viewers ask for
(Leaflet and OpenLayers request ``{z}/{x}/{y}``; vips writes ``z/y/x``):

- zoom 0 is the first level that fits in one tile (``depth="onetile"``), so
  ``zoom = level - grid.min_level``;
- tiles are 256 pixels, without overlap: viewers place them on a fixed grid;
- every tile is full size: edge tiles are padded right and below with the background
  (JPEG) or transparency (PNG, WebP, which then carry alpha on every tile);
- no descriptor: the viewer is told the zoom range; the folder appears in one rename.

:class:`PaddedSink` is shared with TMS (:mod:`pyramidd.sinks.tms`), which differs
only in where the data sits in a padded tile and in its descriptor.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import OptionError
from ..formats import LayoutRules, Source
from ..grid import Grid, TileKey
from ..options import BuildOptions
from .encode import TileEncoder
from .staging import Staging, check_name, output_error, write_file

DEFAULT_TILE_SIZE = 256


def padded_rules(options: BuildOptions, layout: str, *, flip_y: bool) -> LayoutRules:
    """Rules of a map-tile layout: tile 256 unless asked, one-tile depth, no overlap.

    Overlap is refused with :class:`OptionError` rather than ignored: map viewers put
    tile ``(x, y)`` at ``x * size, y * size``, so overlapping tiles would be misplaced.
    """
    tile = DEFAULT_TILE_SIZE if options.tile_size is None else options.tile_size
    if tile < 1:
        raise OptionError(f"--tile-size must be at least 1, got {tile}")
    if options.overlap:
        raise OptionError(
            f"--overlap {options.overlap}: {layout} tiles cannot overlap (map viewers place"
            " them edge to edge); leave --overlap out or use --layout dzi"
        )
    return LayoutRules(tile_size=tile, overlap=0, depth="onetile", flip_y=flip_y)


@dataclass
class PaddedSink:
    """Writes ``NAME/z/x/y.ext`` tiles padded to full size through a :class:`Staging`.

    ``output`` is the final folder ``NAME``. ``at_bottom`` puts a partial tile's data
    at the bottom of the padded tile instead of the top. Plain data, pickled to workers.
    """

    output: Path
    grid: Grid
    encoder: TileEncoder
    staging: Staging
    at_bottom: bool = False

    @property
    def root(self) -> Path:
        """The staged output folder."""
        return self.staging.staged(self.staging.entries[0])

    def zoom(self, level: int) -> int:
        """The zoom number of a grid level."""
        return level - self.grid.min_level

    def tile_path(self, key: TileKey) -> str:
        """Where the tile of ``key`` is staged: ``z/x/y.ext`` with ``x = col``, ``y = row``
        (a string, as :meth:`DziSink.tile_path <pyramidd.sinks.dzi.DziSink.tile_path>`)."""
        return os.path.join(self.root, str(self.zoom(key.level)), str(key.col),
                            f"{key.row}.{self.encoder.suffix}")

    def start(self) -> None:
        """Make the staging directory and every ``z/x`` folder (so workers only write files)."""
        self.staging.start()
        try:
            os.mkdir(self.root)
            for level in self.grid.levels():
                zdir = self.root / str(self.zoom(level))
                os.mkdir(zdir)
                for col in range(self.grid.tiles_across(level)[0]):
                    os.mkdir(zdir / str(col))
        except OSError as exc:
            self.staging.abort()
            raise output_error(exc, "creating", self.root) from None

    def write_tile(self, key: TileKey, pixels: np.ndarray) -> int:
        """Pad ``pixels`` (the tile rectangle of ``key``) to full size, encode, stage. Worker."""
        x0, y0, x1, y1 = self.grid.tile_rect(key)
        if pixels.shape[:2] != (y1 - y0, x1 - x0):
            raise ValueError(f"tile {key} must be {x1 - x0}x{y1 - y0}, got {pixels.shape}")
        size = (self.grid.tile_size, self.grid.tile_size)
        data = self.encoder.encode(pixels, size, at_bottom=self.at_bottom)
        return write_file(self.tile_path(key), data)

    def descriptor(self) -> tuple[str, bytes] | None:
        """``(file name inside the folder, contents)`` of the descriptor, if the layout has one."""
        return None

    def finish(self) -> None:
        """Write the descriptor (if any) last, make it durable, rename the folder into place."""
        described = self.descriptor()
        if described is not None:
            name, data = described
            write_file(self.root / name, data, sync=True)
        self.staging.commit()

    def abort(self) -> None:
        """Remove everything written so far."""
        self.staging.abort()


def padded_output(output: Path, options: BuildOptions) -> Staging:
    """The checked :class:`Staging` of a one-folder output; :class:`OutputError` if taken."""
    output = Path(output)
    staging = Staging(
        output.parent,
        (check_name(output.name),),
        replace=bool(options.extra.get("replace", False)),
    )
    staging.check()
    return staging


class XyzFormat:
    """XYZ map tiles: NAME/z/x/y.ext from the top-left, edge tiles padded to full size."""

    name = "xyz"

    def rules(self, options: BuildOptions) -> LayoutRules:
        """Tile 256, no overlap, zoom 0 the level that fits one tile."""
        return padded_rules(options, "xyz", flip_y=False)

    def create(self, output: Path, grid: Grid, source: Source, options: BuildOptions) -> PaddedSink:
        """The sink for the folder ``output``. Coordinator; writes nothing.

        Raises :class:`OutputError` when ``output`` exists and
        ``options.extra["replace"]`` is not set, or its folder is not writable.
        """
        staging = padded_output(output, options)
        encoder = TileEncoder.from_options(options, alpha=True)
        return PaddedSink(Path(output), grid, encoder, staging)


XYZ = XyzFormat()
