"""Morton (Z-order) codes: 2-D tile positions to a 1-D order that keeps neighbours near."""

from __future__ import annotations

from collections.abc import Iterable


def _spread(v: int) -> int:
    """Insert a zero bit between each bit of ``v`` (works for any size of int)."""
    out = 0
    bit = 0
    while v:
        out |= (v & 1) << (2 * bit)
        v >>= 1
        bit += 1
    return out


def _compact(v: int) -> int:
    """Inverse of :func:`_spread`: keep every other bit."""
    out = 0
    bit = 0
    while v:
        out |= (v & 1) << bit
        v >>= 2
        bit += 1
    return out


def encode(col: int, row: int) -> int:
    """Morton code of ``(col, row)``: bits interleaved, column in the low bit."""
    if col < 0 or row < 0:
        raise ValueError("Morton codes need non-negative coordinates")
    return _spread(col) | (_spread(row) << 1)


def decode(code: int) -> tuple[int, int]:
    """``(col, row)`` of a Morton code."""
    return _compact(code), _compact(code >> 1)


def z_order(cells: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sort ``(col, row)`` cells along the Z curve."""
    return sorted(cells, key=lambda cr: encode(*cr))
