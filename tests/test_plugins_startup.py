"""Start-up checks of the plugin host, as a plugin author meets them: a misspelled hook
fails loudly, tracing shows every hook call, a plugin can be disabled by name, and a
plugin that raises while opening a file fails only that file's build."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pyramidd.testing import gradient, write_image


@pytest.fixture
def plugin_dir(tmp_path: Path):
    """``write(name, code) -> env`` loading module ``name`` as a plugin in every process."""

    def write(name: str, code: str) -> dict[str, str]:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(code))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), env.get("PYTHONPATH")]))
        env["PYRAMIDD_PLUGINS"] = name
        return env

    return write


def pyramidd(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pyramidd.cli", *args], capture_output=True,
                          text=True, timeout=120, env=env)


def test_a_misspelled_hook_stops_start_up(plugin_dir):
    env = plugin_dir("typo_plugin", """
        from pyramidd.hookspecs import hookimpl

        @hookimpl
        def pyramidd_regster(registry):
            pass
    """)
    result = pyramidd("plugins", env=env)
    assert result.returncode != 0
    assert "misspelled" in result.stderr and "pyramidd_regster" in result.stderr
    assert "Traceback" not in result.stderr


def test_tracing_logs_every_hook_call(tmp_path):
    source = write_image(tmp_path / "in.png", gradient(64, 64))
    env = {**os.environ, "PYRAMIDD_TRACE_PLUGINS": "1"}
    result = pyramidd("build", str(source), str(tmp_path / "out"), "--workers", "1", env=env)
    assert result.returncode == 0, result.stderr
    for hook in ("pyramidd_build_started", "pyramidd_build_finished", "pyramidd_worker_started"):
        assert f"hook {hook}" in result.stderr


def test_a_disabled_plugin_is_not_loaded(tmp_path):
    listed = pyramidd("plugins", "--disable-plugin", "mbtiles").stdout
    assert "sink mbtiles" not in listed and "sink dzi" in listed
    source = write_image(tmp_path / "in.png", gradient(64, 64))
    result = pyramidd("build", str(source), str(tmp_path / "m"), "--layout", "mbtiles",
                      "--disable-plugin", "mbtiles")
    assert result.returncode != 0
    assert "no sink called 'mbtiles'" in result.stderr and "Traceback" not in result.stderr


BOOM = """
    from pyramidd.errors import InputError
    from pyramidd.hookspecs import hookimpl

    class Boom:
        name, priority = "boom", 100

        def probe(self, path, options):
            if path.suffix == ".boom":
                raise InputError(f"{path.name}: this boom file is broken, write it again")
            if path.suffix == ".bug":
                raise RuntimeError("a bug in the boom plugin")
            return None

    @hookimpl
    def pyramidd_register(registry):
        registry.add_source(Boom())
"""


def test_a_plugin_raising_on_one_file_fails_only_that_build(plugin_dir, tmp_path):
    env = plugin_dir("boom_plugin", BOOM)
    broken = tmp_path / "x.boom"
    broken.write_bytes(b"boom")
    result = pyramidd("build", str(broken), str(tmp_path / "x"), "--workers", "1", env=env)
    assert result.returncode != 0
    assert "this boom file is broken, write it again" in result.stderr
    assert "Traceback" not in result.stderr
    # The same plugin is asked about, and declines, other files: they still build.
    good = write_image(tmp_path / "y.png", gradient(64, 64))
    result = pyramidd("build", str(good), str(tmp_path / "y"), "--workers", "1", env=env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "y.dzi").exists()


def test_a_plugin_bug_is_reported_as_a_bug_of_that_build(plugin_dir, tmp_path):
    env = plugin_dir("boom_plugin", BOOM)
    buggy = tmp_path / "x.bug"
    buggy.write_bytes(b"bug")
    result = pyramidd("build", str(buggy), str(tmp_path / "x"), "--workers", "1", env=env)
    assert result.returncode != 0
    assert "a bug in the boom plugin" in result.stderr
    assert not list(tmp_path.glob("x.dzi")) and not list(tmp_path.glob("x_files"))
