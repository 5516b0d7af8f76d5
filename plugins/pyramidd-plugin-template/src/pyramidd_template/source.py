"""The ``template-raw`` source: ``NAME.WIDTHxHEIGHTxBANDS.raw``, 8 bits, interleaved."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pyramidd.errors import InputError
from pyramidd.options import BuildOptions

NAME = re.compile(r"\.(\d+)x(\d+)x([1-4])\.raw$")


@dataclass(frozen=True)
class RawSource:
    """Made in the coordinator, pickled to every worker: plain data, no open file."""

    path: Path
    width: int
    height: int
    bands: int

    def open(self) -> "RawReader":
        """Runs in a render worker."""
        shape = (self.height, self.width, self.bands)
        return RawReader(np.memmap(self.path, np.uint8, "r", 0, shape))


@dataclass
class RawReader:
    """The open source in one worker."""

    pixels: np.ndarray

    def read_region(self, x: int, y: int, w: int, h: int) -> np.ndarray:
        """``(h, w, bands)`` uint8; a view of the memory map, read lazily."""
        return self.pixels[y : y + h, x : x + w]

    def close(self) -> None:
        """The memory map is released with this object."""


class RawFormat:
    """Headerless 8-bit images sized by their name: NAME.WIDTHxHEIGHTxBANDS.raw."""

    name = "template-raw"
    priority = 10

    def probe(self, path: Path, options: BuildOptions) -> RawSource | None:
        """Runs in the coordinator: ``None`` when the name does not match (not mine),
        :class:`InputError` when it does but the size disagrees (mine, and broken)."""
        match = NAME.search(Path(path).name)
        if match is None:
            return None
        width, height, bands = map(int, match.groups())
        expected = width * height * bands
        actual = Path(path).stat().st_size
        if actual != expected:
            raise InputError(
                f"{Path(path).name}: {actual} bytes, but {width}x{height}x{bands} needs"
                f" {expected}; fix the size in the name or write the file again"
            )
        return RawSource(Path(path), width, height, bands)
