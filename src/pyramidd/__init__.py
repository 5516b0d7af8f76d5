"""pyramidd: tile pyramids (DZI, TMS, XYZ, graph JSON) from big images and graphs.

One-shot: ``pyramidd build IN OUT``. As a service: ``pyramidd run``. Formats are
plugins; see :mod:`pyramidd.hookspecs` for the hooks and ``docs/plugins.md`` for the
author guide.
"""

__version__ = "0.1.0"
