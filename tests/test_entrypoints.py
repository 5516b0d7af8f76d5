"""The entry point reader against importlib.metadata, on this environment and on
made-up paths."""

from __future__ import annotations

import sys
import zipfile
from importlib import metadata

import pytest

from pyramidd.entrypoints import entry_points


def pairs(points) -> list[tuple[str, str]]:
    return [(ep.name, ep.value) for ep in points]


@pytest.mark.parametrize("group", ["pyramidd", "console_scripts", "pytest11", "no-such-group"])
def test_this_environment_reads_as_importlib_metadata_reads_it(group):
    assert pairs(entry_points(group)) == pairs(metadata.entry_points(group=group))


def dist(folder, name: str, text: str | None, suffix: str = "dist-info") -> None:
    info = folder / f"{name}.{suffix}"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name.split('-')[0]}\n")
    if text is not None:
        (info / "entry_points.txt").write_text(text)


def test_made_up_paths_read_as_importlib_metadata_reads_them(tmp_path, monkeypatch):
    first, second = tmp_path / "first", tmp_path / "second"
    dist(first, "alpha_plugin-1.0", "# a comment\n[pyramidd]\nalpha = alpha.mod:register.fn [extra]\n"
         "[console_scripts]\nalpha = alpha:main\n")
    dist(first, "Beta.Plugin-2.0", None)  # no entry points, and it shadows the one below
    dist(second, "beta_plugin-3.0", "[pyramidd]\nbeta = beta\n")
    dist(second, "Alpha_Plugin-0.9", "[pyramidd]\nold_alpha = old\n")  # shadowed by first
    dist(second, "gamma-1.0", "[pyramidd]\n  gamma  =  gamma.plugin  \n\n[other]\nx = y\n",
         suffix="egg-info")
    monkeypatch.setattr(sys, "path", [str(first), str(tmp_path / "missing"), str(second)])
    assert pairs(entry_points("pyramidd")) == pairs(metadata.entry_points(group="pyramidd"))
    assert pairs(entry_points("pyramidd")) == [("alpha", "alpha.mod:register.fn [extra]"),
                                               ("gamma", "gamma.plugin")]


def test_an_entry_point_loads_its_attribute(tmp_path, monkeypatch):
    (tmp_path / "epmod.py").write_text("class A:\n    class B:\n        value = 42\n")
    dist(tmp_path, "epmod-1.0", "[pyramidd]\nthing = epmod:A.B [x]\nmodule = epmod\n")
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    loaded = {ep.name: ep.load() for ep in entry_points("pyramidd")}
    assert loaded["thing"].value == 42 and loaded["module"].__name__ == "epmod"


def test_a_zip_on_the_path_is_left_to_importlib_metadata(tmp_path, monkeypatch):
    archive = tmp_path / "plugins.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("zipped-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: zipped\n")
        z.writestr("zipped-1.0.dist-info/entry_points.txt", "[pyramidd]\nzipped = zipped\n")
    monkeypatch.setattr(sys, "path", [str(archive)])
    assert pairs(entry_points("pyramidd")) == [("zipped", "zipped")]
