from hypothesis import given
from hypothesis import strategies as st

from pyramidd import morton


@given(st.integers(0, 1 << 40), st.integers(0, 1 << 40))
def test_decode_inverts_encode(col, row):
    assert morton.decode(morton.encode(col, row)) == (col, row)


def test_first_codes_walk_the_z():
    assert [morton.decode(i) for i in range(8)] == [
        (0, 0), (1, 0), (0, 1), (1, 1), (2, 0), (3, 0), (2, 1), (3, 1)
    ]


def test_z_order_keeps_quads_together():
    cells = morton.z_order((c, r) for r in range(4) for c in range(4))
    # Every run of four is one 2x2 block.
    for i in range(0, 16, 4):
        block = cells[i : i + 4]
        assert len({(c // 2, r // 2) for c, r in block}) == 1


def test_negative_coordinates_are_refused():
    import pytest

    with pytest.raises(ValueError):
        morton.encode(-1, 0)
