"""Node ids to node indices without a dict of every id.

Ids are compared by a 64-bit BLAKE2b hash (a collision among a million ids has odds
of about 1 in 36 million; two colliding ids would be reported as a duplicate, never
merged silently into a wrong edge). Hashes are kept in sorted runs merged like a
binary counter, so memory is 16 bytes per node and a batch lookup is a few
``searchsorted`` calls.
"""

from __future__ import annotations

import hashlib

import numpy as np


def hash_ids(ids: list[str], key: bytes = b"") -> np.ndarray:
    """64-bit hashes of ids (``key`` seeds the hash, for tie-breaking ranks)."""
    out = np.empty(len(ids), dtype=np.uint64)
    b2 = hashlib.blake2b
    for n, ident in enumerate(ids):
        out[n] = int.from_bytes(b2(ident.encode(), digest_size=8, key=key).digest(), "little")
    return out


class IdTable:
    """Sorted runs of ``(hash, index)``."""

    def __init__(self) -> None:
        self.runs: list[tuple[np.ndarray, np.ndarray]] = []

    def __len__(self) -> int:
        return sum(len(h) for h, _ in self.runs)

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
        order = np.argsort(hashes, kind="stable")
        self.runs.append((hashes[order], indices[order].astype(np.int64)))
        while len(self.runs) >= 2 and len(self.runs[-1][0]) * 2 >= len(self.runs[-2][0]):
            (h2, i2), (h1, i1) = self.runs.pop(), self.runs.pop()
            h = np.concatenate([h1, h2])
            i = np.concatenate([i1, i2])
            order = np.argsort(h, kind="stable")
            self.runs.append((h[order], i[order]))
