"""Built-in source formats. Each module holds one format; ``BUILTINS`` lists them.

``tiff`` and ``npy`` recognise their files by signature; ``pillow`` (priority -1) takes
whatever else Pillow opens. Their pixels all convert by the rule in
:mod:`pyramidd.sources.convert`.
"""

from .npy import NPY
from .pillow import PILLOW
from .tiff import TIFF

BUILTINS: tuple = (TIFF, NPY, PILLOW)
