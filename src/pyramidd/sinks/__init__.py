"""Built-in sink formats (layouts). Each module holds one layout; ``BUILTINS`` lists them.

``staging`` (atomic output) and ``encode`` (tile encoding) are shared with third-party
sinks: a plugin writing another layout builds on :class:`~pyramidd.sinks.staging.Staging`
and :class:`~pyramidd.sinks.encode.TileEncoder` the way these do. The layouts are
imported on first use of these names (see :mod:`pyramidd.lazy`).
"""

from ..lazy import exports

_LAYOUTS = {"DZI": "dzi", "TMS": "tms", "XYZ": "xyz"}
__all__ = ["BUILTINS", *_LAYOUTS]
__getattr__ = exports(__name__, _LAYOUTS, all_as="BUILTINS")
