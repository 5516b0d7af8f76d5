"""The plain records a graph build moves between stages, and its options.

Objects travel as numpy structured arrays of numbers only; each object's text (id,
label, attributes) is written once by the read stage to a payload file and fetched by
offset when a tile file is written. Bags therefore cost a fixed number of bytes per
object, which is what the memory budget counts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from .errors import GraphOptionError

#: A node in a bag: its index in the read order and its position.
NODE = np.dtype([("i", "<i8"), ("x", "<f8"), ("y", "<f8")])
#: An edge in a bag: its index, its endpoints' node indices and positions.
EDGE = np.dtype(
    [("i", "<i8"), ("s", "<i8"), ("t", "<i8"),
     ("x1", "<f8"), ("y1", "<f8"), ("x2", "<f8"), ("y2", "<f8")]
)
#: An object ranked for sparsification: kind 0 node / 1 edge, rank keys, geometry
#: (a node has x2 = x1, y2 = y1 and s = t = -1).
RANKED = np.dtype(
    [("k", "u1"), ("i", "<i8"), ("imp", "<f8"), ("tie", "<u8"),
     ("x1", "<f8"), ("y1", "<f8"), ("x2", "<f8"), ("y2", "<f8"), ("s", "<i8"), ("t", "<i8")]
)

BAD_DATA_POLICIES = ("error", "skip")


@dataclass(frozen=True)
class GraphOptions:
    """What decides the shape of a graph pyramid. Plain data; crosses to workers.

    ``bag_size`` objects make a bag; a leaf holds ``bags_per_leaf`` bags before it
    splits, and a sparsified node carries at most as many objects as a leaf.
    """

    bag_size: int = 256
    bags_per_leaf: int = 8
    max_depth: int = 18
    memory_budget: int = 512 << 20
    bad_data: str = "error"
    #: ``degree`` or the name of a numeric node attribute; edges rank by the lesser of
    #: their endpoints' importance unless ``edge_importance`` names an edge attribute.
    importance: str = "degree"
    edge_importance: str | None = None
    seed: int = 0
    chunk: int = 16384

    @property
    def capacity(self) -> int:
        """Objects a leaf holds before it splits; also the budget of a sparse node."""
        return self.bag_size * self.bags_per_leaf

    @classmethod
    def from_dict(cls, options: dict[str, Any]) -> "GraphOptions":
        """Pick the graph options out of a profile or CLI options dict.

        Keys may use ``-`` or ``_``; keys that are not graph options are ignored
        (the same dict carries raster options).
        """
        names = {f.name for f in fields(cls)}
        picked = {}
        for key, value in options.items():
            k = key.replace("-", "_")
            if k in names and value is not None:
                picked[k] = value
        opts = cls(**picked)
        opts.check()
        return opts

    def check(self) -> None:
        """Raise :class:`GraphOptionError` for values that cannot work."""
        if not 1 <= self.bag_size <= 1 << 20:
            raise GraphOptionError(f"bag_size must be between 1 and 1048576, got {self.bag_size}")
        if not 1 <= self.bags_per_leaf <= 4096:
            raise GraphOptionError(
                f"bags_per_leaf must be between 1 and 4096, got {self.bags_per_leaf}"
            )
        if not 1 <= self.max_depth <= 30:
            raise GraphOptionError(f"max_depth must be between 1 and 30, got {self.max_depth}")
        if self.memory_budget < 1 << 20:
            raise GraphOptionError(
                f"--memory-budget must be at least 1 MiB (1048576), got {self.memory_budget}"
            )
        if self.bad_data not in BAD_DATA_POLICIES:
            raise GraphOptionError(
                f"bad_data must be 'error' or 'skip', got {self.bad_data!r}"
            )
        if self.chunk < 1:
            raise GraphOptionError(f"chunk must be positive, got {self.chunk}")

    def as_dict(self) -> dict[str, Any]:
        """Plain dict, as recorded in the index."""
        return asdict(self)
