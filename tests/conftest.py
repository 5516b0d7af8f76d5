"""Shared test set-up: the test plugin is importable by render workers too."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent


@pytest.fixture
def tests_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Render workers can import modules of the tests folder (tasks defined in tests)."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))


@pytest.fixture
def rawplugin(monkeypatch: pytest.MonkeyPatch):
    """Load ``tests/rawplugin.py`` in the coordinator and in every render worker."""
    monkeypatch.syspath_prepend(str(TESTS))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("PYRAMIDD_PLUGINS", "rawplugin")
    from pyramidd import plugins

    plugins._loaded.clear()
    yield sys.modules.get("rawplugin") or __import__("rawplugin")
    plugins._loaded.clear()
