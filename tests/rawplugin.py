"""A plugin used by the engine tests: a lossless ``raw`` sink and an ``.npy`` source.

Loaded with ``PYRAMIDD_PLUGINS=rawplugin``; it goes through the same hooks as any
plugin, in the coordinator and in every render worker.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pyramidd.formats import LayoutRules
from pyramidd.grid import Grid, TileKey
from pyramidd.hookspecs import hookimpl

READS_LOG = "PYRAMIDD_TEST_READS"


@dataclass
class ArrayReader:
    path: str

    def __post_init__(self) -> None:
        a = np.load(self.path, mmap_mode="r")
        self.a = a if a.ndim == 3 else a[:, :, None]
        self.log = os.environ.get(READS_LOG)

    def read_region(self, x: int, y: int, w: int, h: int) -> np.ndarray:
        if self.log:  # one line per read, so tests can count source pixels
            with open(self.log, "a") as f:
                f.write(f"{x} {y} {w} {h}\n")
        return np.asarray(self.a[y : y + h, x : x + w])

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class ArraySource:
    path: str
    width: int
    height: int
    bands: int

    def open(self) -> ArrayReader:
        return ArrayReader(self.path)


class ArrayFormat:
    """Test source: .testnpy arrays."""

    name = "testnpy"
    priority = 100

    def probe(self, path: Path, options) -> ArraySource | None:
        if not path.name.endswith(".testnpy"):
            return None
        shape = np.load(path, mmap_mode="r").shape
        h, w = shape[:2]
        return ArraySource(str(path), w, h, shape[2] if len(shape) == 3 else 1)


@dataclass
class RawSink:
    output: Path
    grid: Grid
    staging: Path

    def start(self) -> None:
        self.staging.mkdir(parents=True)

    def write_tile(self, key: TileKey, pixels: np.ndarray) -> int:
        path = self.staging / f"{key.level}_{key.col}_{key.row}.npy"
        assert not path.exists(), f"tile {key} written twice ({os.getpid()})"
        np.save(path, pixels)
        return path.stat().st_size

    def finish(self) -> None:
        (self.staging / "done").write_text("ok")
        self.staging.rename(self.output)

    def abort(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)


class RawLayout:
    """Test sink: every tile as an .npy file."""

    name = "raw"

    def rules(self, options) -> LayoutRules:
        return LayoutRules(
            tile_size=options.tile_size or 254,
            overlap=1 if options.overlap is None else options.overlap,
            depth=options.extra.get("depth", "onepixel"),
            flip_y=options.extra.get("flip_y", False),
        )

    def create(self, output: Path, grid: Grid, source, options) -> RawSink:
        return RawSink(output, grid, output.with_name("." + output.name + ".staging"))


def read_tiles(folder: Path) -> dict[TileKey, np.ndarray]:
    """Tiles a raw sink wrote."""
    out = {}
    for f in folder.glob("*.npy"):
        level, col, row = map(int, f.stem.split("_"))
        out[TileKey(level, col, row)] = np.load(f)
    return out


@hookimpl
def pyramidd_register(registry) -> None:
    registry.add_source(ArrayFormat())
    registry.add_sink(RawLayout())
