"""C library functions pyramidd calls directly (``syncfs``, ``renameat2``, ``mallopt``,
``malloc_trim``, ``prctl``), looked up in the process's own symbols.

The process already has its C library loaded: looking a function up there costs
microseconds, where ``ctypes.util.find_library`` runs ``ldconfig -p`` in a child
process, a fork of the caller at every render worker's start.
"""

from __future__ import annotations

import ctypes
from typing import Any


def function(name: str) -> Any:
    """The C library's ``name`` (returning ``int``, ``errno`` kept for
    :func:`ctypes.get_errno`), or ``None`` where this C library has no such function."""
    try:
        fn = getattr(ctypes.CDLL(None, use_errno=True), name)
    except (OSError, AttributeError):
        return None
    fn.restype = ctypes.c_int
    return fn
