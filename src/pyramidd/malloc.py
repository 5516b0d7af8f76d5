"""The C allocator's settings for render workers.

A worker allocates and frees arrays of a few hundred KiB to tens of MiB for every
tile it makes (quads, crops, encoder buffers). glibc serves the large ones with
mappings of their own and gives the top of its heap back to the kernel as soon as a
few hundred KiB are free, so the next tile faults in and zeroes the same pages again: on the
virtual machines measured that was a tenth to a fifth of a DZI build's wall time.
Keeping the large blocks on the heap and a pad of freed pages at its top reuses
them instead; the cost is at most the pad in resident memory per worker (a few MiB
measured at the peak of a 16384² build).
"""

from __future__ import annotations

import ctypes

from . import libc

#: ``mallopt`` parameters (glibc ``malloc.h``).
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3

#: Blocks up to this size come from the heap, not from their own mapping.
MMAP_THRESHOLD = 256 << 20
#: Freed pages kept at the top of the heap rather than given back at once.
TOP_PAD = 64 << 20


def tune() -> bool:
    """Apply the settings to this process; ``False`` where the C library is not glibc
    (the defaults then stay, which is only slower)."""
    mallopt = libc.function("mallopt")
    if mallopt is None:
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(M_TOP_PAD, TOP_PAD))
