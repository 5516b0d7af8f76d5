"""The systemd unit: `systemd-analyze verify` accepts it, and it says what the service needs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "systemd" / "pyramidd.service"
INSTALLED = "/opt/pyramidd/.venv/bin/pyramidd"


def settings() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";")):
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify_passes(tmp_path):
    # verify insists that ExecStart's program exists; the only change is to point it at
    # this checkout's pyramidd instead of the installed path.
    local = Path(sys.executable).parent / "pyramidd"
    assert local.exists()
    text = UNIT.read_text()
    assert INSTALLED in text
    copy = tmp_path / "pyramidd.service"
    copy.write_text(text.replace(INSTALLED, str(local)))
    result = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def test_unit_has_the_notify_watchdog_restart_and_hardening_settings():
    s = settings()
    expected = {
        "Type": "notify", "Restart": "on-failure", "NoNewPrivileges": "yes", "PrivateTmp": "yes",
        "ProtectSystem": "strict", "StateDirectory": "pyramidd", "User": "pyramidd",
    }
    for key, value in expected.items():
        assert s.get(key) == [value], key
    assert int(s["WatchdogSec"][0]) > 0
    assert s["ReadWritePaths"] and "DynamicUser" not in s
    assert s["RestartPreventExitStatus"] == ["2"]  # what `pyramidd run` exits with on a bad config
    assert s["ExecStart"][0].startswith(INSTALLED + " run --config ")
    assert s["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
