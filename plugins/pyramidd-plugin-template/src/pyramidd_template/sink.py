"""The ``template-tiles`` sink: ``NAME/LEVEL/COL_ROW.png`` and ``NAME/manifest.json``."""

from __future__ import annotations

import io
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pyramidd.errors import OutputError
from pyramidd.formats import LayoutRules, Source
from pyramidd.grid import Grid, TileKey
from pyramidd.options import BuildOptions

MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


class TilesFormat:
    """PNG tiles in NAME/LEVEL/COL_ROW.png with a JSON manifest."""

    name = "template-tiles"

    def rules(self, options: BuildOptions) -> LayoutRules:
        """Tile size from the options (default 256), no overlap, down to one tile."""
        return LayoutRules(tile_size=options.tile_size or 256, overlap=options.overlap or 0,
                           depth="onetile")

    def create(self, output: Path, grid: Grid, source: Source, options: BuildOptions) -> "TilesSink":
        """Runs in the coordinator; writes nothing yet."""
        output = Path(output)
        if output.exists():
            raise OutputError(f"{output} already exists: remove it or choose another output")
        staging = output.with_name(f".{output.name}.staging-{uuid.uuid4().hex[:8]}")
        return TilesSink(output, staging, grid)


@dataclass
class TilesSink:
    """Pickled to workers: paths and the grid only."""

    output: Path
    staging: Path
    grid: Grid

    def start(self) -> None:
        """Coordinator: make the staging folder next to the output (same filesystem)."""
        try:
            self.staging.mkdir(parents=True)
        except OSError as exc:
            raise OutputError(f"cannot write next to {self.output}: {exc.strerror}") from exc

    def write_tile(self, key: TileKey, pixels: np.ndarray) -> int:
        """Worker: encode one tile and write it; return the bytes written."""
        # Paths of tiles as strings, not pathlib: pathlib interns every part of a path,
        # and each tile's name is new, so a worker's table of interned strings would
        # grow with the pyramid.
        folder = os.path.join(self.staging, str(key.level))
        os.makedirs(folder, exist_ok=True)
        # Imported here, not at the top: pyramidd imports every plugin's module in every
        # process it starts, for any build, and Pillow is 15 ms of that for nothing
        # when the build is not this layout.
        from PIL import Image

        buf = io.BytesIO()
        bands = pixels.shape[-1]
        Image.fromarray(pixels[..., 0] if bands == 1 else pixels, MODES[bands]).save(buf, "PNG")
        with open(os.path.join(folder, f"{key.col}_{key.row}.png"), "wb") as f:
            f.write(buf.getvalue())
        return buf.tell()

    def finish(self) -> None:
        """Coordinator: the manifest last, then one rename makes the output appear."""
        grid = self.grid
        manifest = {
            "width": grid.width, "height": grid.height, "tile_size": grid.tile_size,
            "overlap": grid.overlap, "levels": [grid.min_level, grid.top],
        }
        (self.staging / "manifest.json").write_text(json.dumps(manifest, indent=2))
        os.rename(self.staging, self.output)

    def abort(self) -> None:
        """Coordinator: remove everything written so far."""
        shutil.rmtree(self.staging, ignore_errors=True)
