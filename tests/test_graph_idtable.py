"""The read stage's id table: lookups by hash through sorted runs."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pyramidd.graph.idtable import IdTable, hash_ids, merge_runs


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 300), min_size=1, max_size=12), st.integers(0, 2**32 - 1))
def test_every_id_added_in_batches_is_found_and_no_other(sizes: list[int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    hashes = np.unique(rng.integers(0, 2**64 - 1, sum(sizes) * 2, dtype=np.uint64, endpoint=True))
    hashes = rng.permutation(hashes)[: sum(sizes)]
    table, start = IdTable(), 0
    for n in sizes:
        table.add(hashes[start:start + n], np.arange(start, start + n, dtype=np.int64))
        start += n
    assert len(table) == start
    assert table.lookup(hashes[:start]).tolist() == list(range(start))
    assert (table.lookup(hashes[start:]) == -1).all()
    # Runs stay sorted and few, 12 bytes an id.
    assert all((np.diff(h.astype(object)) > 0).all() for h, _ in table.runs)
    assert len(table.runs) <= 2 * max(1, int(np.log2(start)) + 1)
    assert table.nbytes == 12 * start


def test_merge_places_the_smaller_run_into_the_larger() -> None:
    a = (np.array([2, 5, 9], dtype=np.uint64), np.array([0, 1, 2], dtype=np.uint32))
    b = (np.array([1, 6], dtype=np.uint64), np.array([3, 4], dtype=np.int64))
    h, i = merge_runs(b, a)
    assert h.tolist() == [1, 2, 5, 6, 9] and i.tolist() == [3, 0, 1, 4, 2]
    assert i.dtype == np.int64


def test_hashes_are_seeded() -> None:
    ids = ["a", "b", "a"]
    plain, seeded = hash_ids(ids), hash_ids(ids, b"\x01" + bytes(7))
    assert plain[0] == plain[2] != plain[1]
    assert seeded[0] == seeded[2] and seeded[0] != plain[0]
