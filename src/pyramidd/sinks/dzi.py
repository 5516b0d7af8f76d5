"""Deep Zoom (DZI): ``NAME.dzi`` and ``NAME_files/LEVEL/COL_ROW.ext``.

Files, levels and tile rectangles are exactly those of ``vips dzsave``: level 0 is
1x1, tiles of ``Grid.tile_rect`` (overlap on interior edges only, edge tiles
smaller), and the same descriptor XML byte for byte. vips' ``vips-properties.xml``
(image metadata) is not written.
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

DEFAULT_TILE_SIZE = 254
DEFAULT_OVERLAP = 1

# vips dzsave's template, including its spacing (the blank after "<Size").
_DESCRIPTOR = """\
<?xml version="1.0" encoding="UTF-8"?>
<Image xmlns="http://schemas.microsoft.com/deepzoom/2008"
  Format="{format}"
  Overlap="{overlap}"
  TileSize="{tile_size}"
  >
  <Size 
    Height="{height}"
    Width="{width}"
  />
</Image>
"""


def descriptor(grid: Grid, suffix: str) -> str:
    """The ``.dzi`` XML for ``grid`` with tiles of extension ``suffix``, as vips writes it."""
    return _DESCRIPTOR.format(
        format=suffix,
        overlap=grid.overlap,
        tile_size=grid.tile_size,
        height=grid.height,
        width=grid.width,
    )


def split_output(output: Path) -> tuple[Path, str]:
    """``(folder, NAME)`` of a DZI output given as ``NAME`` or ``NAME.dzi``."""
    output = Path(output)
    name = output.name
    base = name[:-4] if name.lower().endswith(".dzi") else name
    if not base:
        raise OptionError(f"DZI output {str(output)!r} has no name: give e.g. out or out.dzi")
    return output.parent, check_name(base)


@dataclass
class DziSink:
    """Writes one Deep Zoom pyramid through a :class:`Staging` directory.

    ``output`` is the final ``NAME.dzi``; its tiles go to ``NAME_files`` beside it.
    Plain data, pickled to render workers.
    """

    output: Path
    grid: Grid
    encoder: TileEncoder
    staging: Staging

    @property
    def files(self) -> str:
        """Name of the tile folder, ``NAME_files``."""
        return self.staging.entries[0]

    def tile_path(self, key: TileKey) -> str:
        """Where the tile of ``key`` is staged.

        A string, not a :class:`~pathlib.Path`: pathlib interns every part of a path,
        and a tile's name is new for every tile, so the interpreter's table of interned
        strings would grow with the pyramid in every worker (1.8 MiB at 32768²).
        """
        name = f"{key.col}_{key.row}.{self.encoder.suffix}"
        return os.path.join(self.staging.staged(self.files), str(key.level), name)

    def start(self) -> None:
        """Make the staging directory and every level folder (so workers only write files)."""
        self.staging.start()
        root = self.staging.staged(self.files)
        try:
            os.mkdir(root)
            for level in self.grid.levels():
                os.mkdir(root / str(level))
        except OSError as exc:
            self.staging.abort()
            raise output_error(exc, "creating", root) from None

    def write_tile(self, key: TileKey, pixels: np.ndarray) -> int:
        """Encode ``pixels`` (the tile rectangle of ``key``) and stage the file. Worker."""
        x0, y0, x1, y1 = self.grid.tile_rect(key)
        if pixels.shape[:2] != (y1 - y0, x1 - x0):
            raise ValueError(f"tile {key} must be {x1 - x0}x{y1 - y0}, got {pixels.shape}")
        return write_file(self.tile_path(key), self.encoder.encode(pixels))

    def finish(self) -> None:
        """Write ``NAME.dzi`` last, make it all durable, move ``NAME_files`` then ``NAME.dzi`` in."""
        name = self.staging.entries[-1]
        write_file(
            self.staging.staged(name),
            descriptor(self.grid, self.encoder.suffix).encode(),
            sync=True,
        )
        self.staging.commit()

    def abort(self) -> None:
        """Remove everything written so far."""
        self.staging.abort()


class DziFormat:
    """Deep Zoom: NAME.dzi and NAME_files/LEVEL/COL_ROW.ext, as vips dzsave writes them."""

    name = "dzi"

    def rules(self, options: BuildOptions) -> LayoutRules:
        """Tile 254, overlap 1, down to 1x1 pixel, unless the options say otherwise."""
        tile = DEFAULT_TILE_SIZE if options.tile_size is None else options.tile_size
        overlap = DEFAULT_OVERLAP if options.overlap is None else options.overlap
        if tile < 1:
            raise OptionError(f"--tile-size must be at least 1, got {tile}")
        if not 0 <= overlap < tile:
            raise OptionError(f"--overlap {overlap} must be at least 0 and less than the tile size {tile}")
        return LayoutRules(tile_size=tile, overlap=overlap, depth="onepixel")

    def create(self, output: Path, grid: Grid, source: Source, options: BuildOptions) -> DziSink:
        """The sink for ``output`` (``NAME`` or ``NAME.dzi``). Coordinator; writes nothing.

        Raises :class:`OutputError` when the output exists and
        ``options.extra["replace"]`` is not set, or its folder is not writable.
        """
        folder, base = split_output(output)
        staging = Staging(
            folder,
            (check_name(base + "_files"), check_name(base + ".dzi")),
            replace=bool(options.extra.get("replace", False)),
        )
        staging.check()
        return DziSink(folder / (base + ".dzi"), grid, TileEncoder.from_options(options), staging)


DZI = DziFormat()
