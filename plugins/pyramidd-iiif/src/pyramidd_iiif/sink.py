"""The IIIF level 0 sink: tiles at their canonical URIs, ``info.json`` last.

A tile of DZI level ``L`` covers full-resolution pixels ``scale = 2**(top - L)`` times
its own; its URI names that region of the full image and the size it is delivered at:
``x,y,w,h/w',h'/0/default.EXT``, with ``full`` for the whole image and ``max`` for
full size, the canonical forms a client asks for.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pyramidd.errors import OptionError
from pyramidd.formats import LayoutRules, Source
from pyramidd.grid import Grid, TileKey
from pyramidd.options import SUFFIXES, BuildOptions
from pyramidd.sinks.staging import Staging, check_name, write_file

FORMATS = {"jpg": "jpg", "jpeg": "jpg", "png": "png", "webp": "webp"}
_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def tile_uri(grid: Grid, key: TileKey) -> tuple[str, str]:
    """``(region, size)`` of a tile in canonical IIIF Image API 3.0 form."""
    scale = grid.scale(key.level)
    x0, y0, x1, y1 = grid.core(key)
    x, y = x0 * scale, y0 * scale
    w, h = min((x1 - x0) * scale, grid.width - x), min((y1 - y0) * scale, grid.height - y)
    region = "full" if (x, y, w, h) == (0, 0, grid.width, grid.height) else f"{x},{y},{w},{h}"
    size = "max" if (x1 - x0, y1 - y0) == (grid.width, grid.height) else f"{x1 - x0},{y1 - y0}"
    return region, size


def info_json(grid: Grid, suffix: str, id: str) -> dict[str, Any]:
    """The ``info.json`` of a level 0 image service over ``grid``."""
    info: dict[str, Any] = {
        "@context": "http://iiif.io/api/image/3/context.json",
        "id": id,
        "type": "ImageService3",
        "protocol": "http://iiif.io/api/image",
        "profile": "level0",
        "width": grid.width,
        "height": grid.height,
        "tiles": [{
            "width": grid.tile_size,
            "scaleFactors": [grid.scale(level) for level in reversed(grid.levels())],
        }],
    }
    fmt = FORMATS[suffix]
    if fmt != "jpg":
        # Level 0 promises jpg only; a client must be told the tiles are another format.
        info["preferredFormats"] = [fmt]
        info["extraFormats"] = [fmt]
    return info


class IIIFFormat:
    """IIIF Image API 3.0, level 0: static tiles and info.json."""

    name = "iiif"

    def rules(self, options: BuildOptions) -> LayoutRules:
        """256-pixel tiles unless asked otherwise; IIIF tiles do not overlap."""
        if options.overlap:
            raise OptionError(
                f"IIIF tiles do not overlap: drop --overlap {options.overlap} for --layout iiif"
            )
        return LayoutRules(tile_size=options.tile_size or 256, overlap=0, depth="onetile")

    def create(self, output: Path, grid: Grid, source: Source, options: BuildOptions) -> "IIIFSink":
        """The sink for the folder ``output``; nothing is written until ``start``."""
        output = Path(output)
        name = check_name(output.name)
        staging = Staging(output.parent, (name,), replace=bool(options.extra.get("replace", False)))
        staging.check()
        base = str(options.extra.get("iiif_base") or "").rstrip("/")
        return IIIFSink(
            output=output,
            grid=grid,
            staging=staging,
            suffix=options.suffix,
            quality=options.quality,
            background=options.background,
            id=f"{base}/{name}" if base else name,
        )


@dataclass
class IIIFSink:
    """One IIIF build through a staging folder; pickled to workers."""

    output: Path
    grid: Grid
    staging: Staging
    suffix: str
    quality: int
    background: tuple[int, int, int, int]
    id: str

    @property
    def root(self) -> Path:
        """The staged image folder."""
        return self.staging.staged(self.output.name)

    def start(self) -> None:
        """Make the staging folder and the image folder in it."""
        self.staging.start()
        os.mkdir(self.root)

    def write_tile(self, key: TileKey, pixels: np.ndarray) -> int:
        """Encode one tile to ``REGION/SIZE/0/default.EXT``. Runs in a worker."""
        region, size = tile_uri(self.grid, key)
        # Strings, not pathlib: pathlib interns every part of a path, and each tile's
        # region is new, so a worker's table of interned strings would grow with the image.
        folder = os.path.join(self.root, region, size, "0")
        os.makedirs(folder, exist_ok=True)
        return write_file(os.path.join(folder, f"default.{FORMATS[self.suffix]}"), self.encode(pixels))

    def encode(self, pixels: np.ndarray) -> bytes:
        """Tile bytes; JPEG tiles lose alpha over the background colour."""
        bands = pixels.shape[-1]
        if FORMATS[self.suffix] == "jpg" and bands in (2, 4):
            colour = pixels[..., :-1].astype(np.uint32)
            alpha = pixels[..., -1:].astype(np.uint32)
            bg = np.array(self.background[: bands - 1] if bands == 4 else self.background[:1],
                          np.uint32)
            pixels = ((colour * alpha + bg * (255 - alpha) + 127) // 255).astype(np.uint8)
            bands -= 1
        from PIL import Image  # here: pyramidd imports this module for every build

        image = Image.fromarray(pixels[..., 0] if bands == 1 else pixels, _MODES[bands])
        buf = io.BytesIO()
        fmt = SUFFIXES[self.suffix]
        image.save(buf, fmt, **({"quality": self.quality} if fmt in ("JPEG", "WEBP") else {}))
        return buf.getvalue()

    def finish(self) -> None:
        """``info.json`` last, then the folder is moved into place."""
        info = info_json(self.grid, self.suffix, self.id)
        write_file(self.root / "info.json", json.dumps(info, indent=2).encode(), sync=True)
        self.staging.commit()

    def abort(self) -> None:
        """Remove everything written so far."""
        self.staging.abort()
