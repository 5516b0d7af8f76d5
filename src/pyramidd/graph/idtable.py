"""Node ids to node indices without a dict of every id.

Ids are compared by a 64-bit BLAKE2b hash (a collision among a million ids has odds
of about 1 in 36 million; two colliding ids would be reported as a duplicate, never
merged silently into a wrong edge). Hashes are kept in sorted runs merged like a
binary counter, so memory is 12 bytes per node (the hash and a 32-bit index) and a
batch lookup is a few ``searchsorted`` calls. Two runs merge by placing the smaller
into the larger (no sort of both), so a merge needs about one more copy of them.
"""

from __future__ import annotations

import hashlib

import numpy as np


def hash_ids(ids: list[str], key: bytes = b"") -> np.ndarray:
    """64-bit hashes of ids (``key`` seeds the hash, for tie-breaking ranks)."""
    out = np.empty(len(ids), dtype=np.uint64)
    b2 = hashlib.blake2b
    for n, ident in enumerate(ids):
        # surrogatepass: an id may hold a lone surrogate (a JSON "\ud800")
        data = ident.encode("utf-8", "surrogatepass")
        out[n] = int.from_bytes(b2(data, digest_size=8, key=key).digest(), "little")
    return out


#: Node indices below this are kept in 32 bits.
SMALL_INDEX = 1 << 32


class IdTable:
    """Sorted runs of ``(hash, index)``."""

    def __init__(self) -> None:
        self.runs: list[tuple[np.ndarray, np.ndarray]] = []

    def __len__(self) -> int:
        return sum(len(h) for h, _ in self.runs)

    @property
    def nbytes(self) -> int:
        """Memory the runs hold."""
        return sum(h.nbytes + i.nbytes for h, i in self.runs)

    def lookup(self, hashes: np.ndarray) -> np.ndarray:
        """Index of each hash, ``-1`` where unknown."""
        out = np.full(len(hashes), -1, dtype=np.int64)
        for h, idx in self.runs:
            if not len(h):
                continue
            pos = np.searchsorted(h, hashes)
            pos[pos == len(h)] = 0
            found = h[pos] == hashes
            out[found] = idx[pos[found]]
        return out

    def add(self, hashes: np.ndarray, indices: np.ndarray) -> None:
        """Add hashes known to be new and unique."""
        if not len(hashes):
            return
        small = int(indices.max()) < SMALL_INDEX and int(indices.min()) >= 0
        order = np.argsort(hashes, kind="stable")
        self.runs.append((hashes[order], indices[order].astype(np.uint32 if small else np.int64)))
        while len(self.runs) >= 2 and len(self.runs[-1][0]) * 2 >= len(self.runs[-2][0]):
            b, a = self.runs.pop(), self.runs.pop()
            self.runs.append(merge_runs(a, b))


def merge_runs(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]
               ) -> tuple[np.ndarray, np.ndarray]:
    """One sorted run of two with no hash in common."""
    (ha, ia), (hb, ib) = a, b
    if len(ha) < len(hb):
        (ha, ia), (hb, ib) = (hb, ib), (ha, ia)
    # Where each entry of the smaller run lands: after the larger run's entries below it
    # and the smaller run's entries before it.
    at = np.searchsorted(ha, hb) + np.arange(len(hb))
    rest = np.ones(len(ha) + len(hb), dtype=bool)
    rest[at] = False
    h = np.empty(len(rest), dtype=ha.dtype)
    i = np.empty(len(rest), dtype=np.promote_types(ia.dtype, ib.dtype))
    h[at], h[rest] = hb, ha
    i[at], i[rest] = ib, ia
    return h, i
