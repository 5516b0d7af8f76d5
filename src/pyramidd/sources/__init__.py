"""Built-in source formats. Each module holds one format; ``BUILTINS`` lists them.

``tiff`` and ``npy`` recognise their files by signature; ``pillow`` (priority -1) takes
whatever else Pillow opens. Their pixels all convert by the rule in
:mod:`pyramidd.sources.convert`. The formats are imported on first use of these names
(see :mod:`pyramidd.lazy`).
"""

from ..lazy import exports

_FORMATS = {"TIFF": "tiff", "NPY": "npy", "PILLOW": "pillow"}
__all__ = ["BUILTINS", *_FORMATS]
__getattr__ = exports(__name__, _FORMATS, all_as="BUILTINS")
