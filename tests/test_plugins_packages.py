"""Each package in plugins/ passes its own test suite, run as its author runs it:
``pytest`` inside the package folder, against the installed pyramidd."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PLUGINS = Path(__file__).resolve().parent.parent / "plugins"
PACKAGES = sorted(p.name for p in PLUGINS.iterdir() if (p / "pyproject.toml").is_file())


def test_every_plugin_package_is_complete():
    assert {"pyramidd-mbtiles", "pyramidd-openslide", "pyramidd-plugin-template",
            "pyramidd-iiif"} <= set(PACKAGES)
    for name in PACKAGES:
        folder = PLUGINS / name
        assert (folder / "README.md").is_file(), f"{name} has no README"
        assert list((folder / "tests").glob("test_*.py")), f"{name} has no tests"
        assert "[project.entry-points.pyramidd]" in (folder / "pyproject.toml").read_text()


@pytest.mark.parametrize("name", PACKAGES)
def test_plugin_package_suite_passes(name):
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=PLUGINS / name, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
