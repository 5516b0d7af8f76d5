"""The MBTiles 1.3 sink.

Render workers write tiles concurrently, and SQLite lets one writer at a time hold a
database. So each worker process writes into its own *part* database in a staging
folder, and ``finish`` (in the coordinator, once every tile exists) merges the parts
into the final file, writes the ``metadata`` table last, and renames the file into
place. A reader never sees a half-written ``.mbtiles``.
"""

from __future__ import annotations

import io
import os
import shutil
import sqlite3
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pyramidd.errors import OptionError, OutputError
from pyramidd.formats import LayoutRules, Source
from pyramidd.grid import Grid, TileKey
from pyramidd.options import SUFFIXES, BuildOptions

#: The ``format`` metadata value for each tile suffix, as the specification spells it.
FORMATS = {"jpg": "jpg", "jpeg": "jpg", "png": "png", "webp": "webp"}
_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}

SCHEMA = """
CREATE TABLE metadata (name TEXT, value TEXT);
CREATE UNIQUE INDEX metadata_name ON metadata (name);
CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_data BLOB);
CREATE UNIQUE INDEX tile_index ON tiles (zoom_level, tile_column, tile_row);
"""
PART_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS tiles"
    " (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_data BLOB)"
)


def target_path(output: Path) -> Path:
    """The file a build to ``output`` writes: ``output`` itself when it ends in
    ``.mbtiles``, else ``output`` with ``.mbtiles`` added."""
    output = Path(output)
    return output if output.suffix == ".mbtiles" else output.with_name(output.name + ".mbtiles")


class MBTilesFormat:
    """MBTiles 1.3: every tile in one SQLite file, rows in TMS order (0 at the bottom)."""

    name = "mbtiles"

    def rules(self, options: BuildOptions) -> LayoutRules:
        """256-pixel tiles unless asked otherwise; no overlap (map clients have none)."""
        if options.overlap:
            raise OptionError(
                f"the mbtiles layout has no overlap between tiles: drop --overlap {options.overlap}"
            )
        return LayoutRules(
            tile_size=options.tile_size or 256, overlap=0, depth="onetile", flip_y=True
        )

    def create(self, output: Path, grid: Grid, source: Source, options: BuildOptions) -> "MBTilesSink":
        """The sink for one build; nothing is written until ``start``."""
        if options.suffix not in FORMATS:
            raise OptionError(
                f"the mbtiles layout stores {', '.join(sorted(set(FORMATS.values())))} tiles,"
                f" not {options.suffix!r}: choose one with --suffix"
            )
        target = target_path(output)
        return MBTilesSink(
            output=target,
            staging=target.with_name(f".{target.name}.staging-{uuid.uuid4().hex[:12]}"),
            grid=grid,
            suffix=options.suffix,
            quality=options.quality,
            background=options.background,
            name=str(options.extra.get("name") or target.stem),
            description=str(options.extra.get("description") or ""),
        )


@dataclass
class MBTilesSink:
    """One MBTiles build. Pickled to workers: holds paths and options, and opens its
    part database lazily in each worker process."""

    output: Path
    staging: Path
    grid: Grid
    suffix: str
    quality: int
    background: tuple[int, int, int, int]
    name: str
    description: str = ""
    _part: sqlite3.Connection | None = field(default=None, repr=False, compare=False)
    _part_pid: int = field(default=0, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        # A connection cannot cross processes; each worker opens its own part.
        state = dict(self.__dict__)
        state["_part"], state["_part_pid"] = None, 0
        return state

    # ----------------------------------------------------------------- coordinator

    def start(self) -> None:
        """Make the staging folder next to the target (same filesystem, so the final
        rename is atomic)."""
        try:
            self.output.parent.mkdir(parents=True, exist_ok=True)
            self.staging.mkdir()
        except OSError as exc:
            raise OutputError(f"cannot write {self.output}: {exc.strerror}; check the folder") from exc

    def finish(self) -> None:
        """Merge the workers' parts, write ``metadata`` last, rename into place."""
        self._close_part()
        final = self.staging / "pyramid.mbtiles"
        db = sqlite3.connect(final, isolation_level=None)
        try:
            db.executescript(SCHEMA)
            db.execute("BEGIN")
            for part in sorted(self.staging.glob("part-*.sqlite")):
                db.execute("ATTACH DATABASE ? AS part", (str(part),))
                # OR REPLACE: a retried subtree may have written the same tile twice.
                db.execute("INSERT OR REPLACE INTO tiles SELECT * FROM part.tiles")
                db.execute("COMMIT")
                db.execute("DETACH DATABASE part")
                db.execute("BEGIN")
            (count,) = db.execute("SELECT count(*) FROM tiles").fetchone()
            if count != self.grid.tile_count():
                raise OutputError(
                    f"{self.output.name}: {count} of {self.grid.tile_count()} tiles were written;"
                    " the build was interrupted, run it again"
                )
            db.executemany("INSERT INTO metadata VALUES (?, ?)", self.metadata().items())
            db.execute("COMMIT")
        finally:
            db.close()
        fd = os.open(final, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(final, self.output)
        shutil.rmtree(self.staging, ignore_errors=True)

    def abort(self) -> None:
        """Remove the staging folder; the target is left as it was."""
        self._close_part()
        shutil.rmtree(self.staging, ignore_errors=True)

    def metadata(self) -> dict[str, str]:
        """The ``metadata`` rows. ``name`` and ``format`` are required by the
        specification; ``bounds`` and ``center`` are left out because a plain image is
        not georeferenced. ``width``/``height``/``tile_size`` let a viewer place it."""
        grid = self.grid
        rows = {
            "name": self.name,
            "format": FORMATS[self.suffix],
            "type": "overlay",
            "version": "1",
            "minzoom": "0",
            "maxzoom": str(grid.top - grid.min_level),
            "width": str(grid.width),
            "height": str(grid.height),
            "tile_size": str(grid.tile_size),
        }
        if self.description:
            rows["description"] = self.description
        return rows

    # ----------------------------------------------------------------- worker

    def write_tile(self, key: TileKey, pixels: np.ndarray) -> int:
        """Encode one tile, padded to full size, into this worker's part database."""
        data = self.encode(self.pad(key, pixels))
        zoom = key.level - self.grid.min_level
        # The engine's grid for a flip_y layout is anchored at the bottom, so its row
        # numbers already are TMS rows.
        self._connection().execute(
            "INSERT INTO tiles VALUES (?, ?, ?, ?)", (zoom, key.col, key.row, data)
        )
        return len(data)

    def pad(self, key: TileKey, pixels: np.ndarray) -> np.ndarray:
        """Edge tiles padded to ``tile_size`` square: transparent for PNG/WebP, the
        background colour for JPEG. The image sits at the bottom left of a TMS grid, so
        the padding goes to the right and on top."""
        t = self.grid.tile_size
        h, w, bands = pixels.shape
        if (h, w) == (t, t):
            return pixels
        transparent = self.suffix != "jpg" and self.suffix != "jpeg"
        if transparent and bands in (1, 3):
            alpha = np.full((h, w, 1), 255, np.uint8)
            pixels, bands = np.concatenate([pixels, alpha], axis=-1), bands + 1
        fill = _fill(bands, self.background, transparent)
        out = np.empty((t, t, bands), np.uint8)
        out[...] = fill
        out[t - h :, :w] = pixels
        return out

    def encode(self, pixels: np.ndarray) -> bytes:
        """Tile bytes in the sink's format; JPEG tiles lose alpha over the background."""
        bands = pixels.shape[-1]
        if self.suffix in ("jpg", "jpeg") and bands in (2, 4):
            pixels = _flatten(pixels, self.background)
            bands -= 1
        from PIL import Image  # here: pyramidd imports this module for every build

        image = Image.fromarray(pixels[..., 0] if bands == 1 else pixels, _MODES[bands])
        buf = io.BytesIO()
        fmt = SUFFIXES[self.suffix]
        kwargs: dict[str, Any] = {"quality": self.quality} if fmt in ("JPEG", "WEBP") else {}
        image.save(buf, fmt, **kwargs)
        return buf.getvalue()

    def _connection(self) -> sqlite3.Connection:
        pid = os.getpid()
        if self._part is None or self._part_pid != pid:
            path = self.staging / f"part-{pid}-{uuid.uuid4().hex[:8]}.sqlite"
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            # WAL survives a killed worker (its part stays readable); no fsync per tile,
            # the merged file is fsynced once in finish.
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=OFF")
            conn.execute(PART_SCHEMA)
            self._part, self._part_pid = conn, pid
        return self._part

    def _close_part(self) -> None:
        if self._part is not None and self._part_pid == os.getpid():
            self._part.close()
        self._part, self._part_pid = None, 0


def _fill(bands: int, background: tuple[int, int, int, int], transparent: bool) -> tuple[int, ...]:
    r, g, b, a = background
    grey = (r * 299 + g * 587 + b * 114 + 500) // 1000
    if transparent:
        a = 0
    return {1: (grey,), 2: (grey, a), 3: (r, g, b), 4: (r, g, b, a)}[bands]


def _flatten(pixels: np.ndarray, background: tuple[int, int, int, int]) -> np.ndarray:
    colour, alpha = pixels[..., :-1].astype(np.uint32), pixels[..., -1:].astype(np.uint32)
    bg = np.array(_fill(pixels.shape[-1] - 1, background, False), np.uint32)
    return ((colour * alpha + bg * (255 - alpha) + 127) // 255).astype(np.uint8)
