"""Output names stay one plain component of the output folder, whatever the input is called."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyramidd.service.naming import MAX_NAME_BYTES, inside, output_name


@pytest.mark.parametrize("name, expected", [
    ("scan.tif", "scan"),
    ("scan 01.tif", "scan_01"),
    ("../x.png", "x"),
    ("..\\..\\x.png", "x"),
    ("a\nb.png", "a_b"),
    ("-rf.png", "rf"),
    ("..png", "png"),
    (".hidden", "hidden"),
    ("...", "image"),
    ("", "image"),
    ("photo.dzi.png", "photo.dzi"),
    ("Ünïcødé 写真.jpg", "Ünïcødé_写真"),
    (os.fsdecode(b"caf\xe9.png"), "caf"),
    ("a" * 300 + ".png", "a" * MAX_NAME_BYTES),
])
def test_output_names(name, expected):
    assert output_name(name) == expected


@settings(deadline=None)
@given(st.text(min_size=0, max_size=300) | st.binary(max_size=300).map(os.fsdecode))
def test_any_name_gives_a_plain_component_inside_the_folder(name):
    out = output_name(name)
    assert out and out not in (".", "..") and "/" not in out and "\0" not in out
    assert not out.startswith((".", "-"))
    assert len(out.encode("utf-8")) <= MAX_NAME_BYTES
    folder = Path("/srv/out")
    assert inside(folder, out).parent == folder
    assert os.path.normpath(folder / out).startswith("/srv/out/")


def test_inside_refuses_non_components():
    for bad in ("", ".", "..", "a/b"):
        with pytest.raises(ValueError):
            inside(Path("/o"), bad)
