"""Built-in sink formats (layouts). Each module holds one layout; ``BUILTINS`` lists them.

``staging`` (atomic output) and ``encode`` (tile encoding) are shared with third-party
sinks: a plugin writing another layout builds on :class:`~pyramidd.sinks.staging.Staging`
and :class:`~pyramidd.sinks.encode.TileEncoder` the way these do.
"""

from .dzi import DZI
from .tms import TMS
from .xyz import XYZ

BUILTINS: tuple = (DZI, TMS, XYZ)
