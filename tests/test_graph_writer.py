"""Tile writer helpers: payload reads by offset, the cutoffs handed to the workers."""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path

import numpy as np

from pyramidd.graph import writer
from pyramidd.graph.sparsify import CutoffTable, node_code
from pyramidd.graph.writer import Payload, load_cutoffs, save_cutoffs


def test_payload_reads_each_text_whatever_the_order_and_gaps(tmp_path: Path, monkeypatch) -> None:
    texts = [f'{{"id":"n{i}"}}'.encode() * (1 + i % 7) for i in range(300)]
    path = tmp_path / "p"
    path.write_bytes(b"".join(texts))
    off = np.concatenate([[0], np.cumsum([len(t) for t in texts])])
    want = np.random.default_rng(1).permutation(300)[:120]
    for gap in (0, 64, 1 << 20):  # one read a text, some merged, all in one
        monkeypatch.setattr(writer, "READ_GAP", gap)
        p = Payload(str(path))
        try:
            assert p.read(off[want], off[want + 1]) == [texts[i] for i in want]
            assert p.read(off[:0], off[:0]) == []
        finally:
            p.close()
    # Short reads (allowed of pread) are completed.
    real = os.pread
    monkeypatch.setattr(os, "pread", lambda fd, n, off: real(fd, min(n, 7), off))
    p = Payload(str(path))
    try:
        assert p.read(off[want], off[want + 1]) == [texts[i] for i in want]
    finally:
        p.close()


def test_cutoffs_round_trip(tmp_path: Path) -> None:
    cutoffs = {"": (-3.0, 2**64 - 1, 1, 7), "0": None, "0123": (-0.0, 5, 0, 2**40)}
    path = str(tmp_path / "cutoffs.npz")
    save_cutoffs(path, cutoffs)
    table, want = load_cutoffs(path), CutoffTable.from_dict(cutoffs)
    for field in fields(CutoffTable):
        assert np.array_equal(getattr(table, field.name), getattr(want, field.name))
    found, row = table.find(np.array([node_code("0123"), node_code("01"), node_code("")]))
    assert found.tolist() == [True, False, True]
    assert int(table.tie[row[0]]) == 5 and int(table.tie[row[2]]) == 2**64 - 1
