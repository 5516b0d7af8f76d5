"""The ``.npy`` source: a NumPy array file read through a memory map.

Shapes ``(h, w)`` or ``(h, w, b)`` with b = 1 (L), 2 (LA), 3 (RGB) or 4 (RGBA).
Samples are ``uint8`` (passed through), ``uint16`` in either byte order (to 8 bits by
``(v + 128) // 257``) or ``bool`` (0 / 255); other dtypes are refused, as the rule in
:mod:`pyramidd.sources.convert` says. Regions are sliced from the memory map, so a
worker only pages in the rows it reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..options import BuildOptions
from .convert import Conversion, unsupported
from .raster import ArrayReader, check_size, open_input

MAGIC = b"\x93NUMPY"


@dataclass(frozen=True)
class NpySource:
    """A ``.npy`` file: its size, bands and how its samples convert."""

    path: Path
    width: int
    height: int
    bands: int
    conversion: Conversion

    def open(self) -> ArrayReader:
        """Memory-map the array. Runs in a render worker."""
        try:
            array = np.load(self.path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InputError(f"{self.path.name}: cannot read the array: {exc}") from None
        return ArrayReader(array, self.conversion)


def _header(path: Path) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """Shape, Fortran order, dtype and data offset from the ``.npy`` header."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        return shape, fortran, dtype, f.tell()


class NpyFormat:
    """NumPy ``.npy`` arrays, (h, w) or (h, w, 1..4), uint8, uint16 or bool."""

    name = "npy"
    priority = 0

    def probe(self, path: Path, options: BuildOptions) -> NpySource | None:
        """Read the ``.npy`` header; ``None`` for anything without the NumPy magic.

        Runs in the coordinator.
        """
        f = open_input(path)
        if f is None:
            return None
        with f:
            if f.read(len(MAGIC)) != MAGIC:
                return None
        name = path.name
        try:
            shape, _fortran, dtype, offset = _header(path)
        except Exception as exc:  # numpy's header parser raises many types on bad bytes
            raise InputError(f"{name}: not a readable .npy header: {exc}") from None
        if dtype.hasobject:
            raise unsupported(name, "an array of Python objects")
        if len(shape) not in (2, 3) or (len(shape) == 3 and not 1 <= shape[2] <= 4):
            raise InputError(
                f"{name}: array shape {shape} is not an image; "
                "save it as (height, width) or (height, width, bands) with 1 to 4 bands"
            )
        height, width = shape[:2]
        samples = shape[2] if len(shape) == 3 else 1
        check_size(name, width, height, options)
        if dtype == np.uint8:
            bits = 8
        elif dtype.kind == "u" and dtype.itemsize == 2:
            bits = 16
        elif dtype == np.bool_:
            bits = 1
        else:
            raise unsupported(name, f"dtype {dtype}")
        expected = offset + int(np.prod(shape)) * dtype.itemsize
        size = path.stat().st_size
        if size < expected:
            raise InputError(
                f"{name}: truncated: the header promises {expected:,} bytes, "
                f"the file has {size:,}"
            )
        conversion = Conversion(
            "grey" if samples <= 2 else "rgb", bits=bits, alpha=samples in (2, 4)
        )
        return NpySource(path, width, height, conversion.bands, conversion)


NPY = NpyFormat()
