"""Output names that cannot escape the output folder, whatever an input is called.

Input names come from whoever can write to a drop folder: they may hold newlines,
backslashes, bytes that are not UTF-8, leading dashes or dots, or be 255 bytes long.
The output name keeps what is readable (letters and digits of any script, ``-``,
``_``, ``.``, ``+``) and replaces the rest, so it is one plain path component.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

#: Bytes kept of a name, leaving room under the usual 255-byte limit for what layouts
#: append (``_files``, ``.dzi``) and for staging names.
MAX_NAME_BYTES = 180
_UNSAFE = re.compile(r"[^\w.+-]+")


def output_name(input_name: str) -> str:
    """The pyramid name for an input file name: one safe, non-hidden path component.

    >>> output_name("scan 01.tif")
    'scan_01'
    >>> output_name("../x.png")
    'x'
    """
    # Names with bytes that are not UTF-8 reach Python as lone surrogates; show them
    # as the replacement character rather than failing to encode them later.
    text = os.fsencode(input_name).decode("utf-8", errors="replace")
    text = text.replace("\\", "/").rsplit("/", 1)[-1]  # a path-looking name: keep its last part
    stem, dot, _ext = text.rpartition(".")
    if dot and stem.strip("."):
        text = stem
    text = _UNSAFE.sub("_", text).strip("._-+")
    text = re.sub(r"_{2,}", "_", text)
    encoded = text.encode("utf-8")[:MAX_NAME_BYTES]
    text = encoded.decode("utf-8", errors="ignore").rstrip("._-+")
    return text or "image"


def inside(folder: Path, name: str) -> Path:
    """``folder / name``, checked to be directly inside ``folder``; :class:`ValueError` if not."""
    path = folder / name
    if name in ("", ".", "..") or os.sep in name or path.parent != folder:
        raise ValueError(f"{name!r} is not a plain file name")
    return path
