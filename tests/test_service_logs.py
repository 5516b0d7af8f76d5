"""Logging: JSON lines off a terminal, and render workers' events in the service's log."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import anyio
import pytest
import structlog

from pyramidd.service import logs
from pyramidd.service.testing import deadline


@pytest.fixture(autouse=True)
def _restore_logging():
    import logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    with deadline(60):
        yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_when_not_a_terminal():
    out = io.StringIO()
    logs.configure("info", "auto", stream=out)
    structlog.get_logger("t").info("job done", input="a.png", tiles=3)
    structlog.get_logger("t").debug("hidden")
    event = json.loads(out.getvalue())
    assert event["event"] == "job done" and event["tiles"] == 3 and event["level"] == "info"
    assert "timestamp" in event and len(out.getvalue().splitlines()) == 1


def test_library_logs_are_json_lines_too():
    import logging

    out = io.StringIO()
    logs.configure("info", "json", stream=out)
    logging.getLogger("hypercorn.error").warning("port %d busy", 8765)
    event = json.loads(out.getvalue())
    assert event["event"] == "port 8765 busy" and event["level"] == "warning"
    assert event["logger"] == "hypercorn.error"


def test_forwarded_worker_events_keep_their_fields():
    out = io.StringIO()
    logs.configure("info", "json", stream=out)
    logs.forward({"event": "tile written", "level": "warning", "worker": 1, "pid": 42,
                  "timestamp": "x"})
    event = json.loads(out.getvalue())
    assert event["event"] == "tile written" and event["level"] == "warning"
    assert event["worker"] == 1 and event["pid"] == 42 and event["source"] == "worker"


def log_in_worker() -> None:
    """A task: log an event the way plugin code in a worker would, and the way a
    library does (tifffile on a damaged file)."""
    import logging

    structlog.get_logger("plugin").warning("slow codec", seconds=2.5, path=object())
    logging.getLogger("tifffile").error("<TiffPage 0> missing %s tag", "ByteCounts")
    logging.getLogger("tifffile").info("below the level: not sent")


def test_events_logged_in_a_real_render_worker_reach_the_service_log(monkeypatch):
    from pyramidd.pool import WorkerPool

    # The worker imports this module to run log_in_worker.
    here = str(Path(__file__).parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")])))

    out = io.StringIO()
    logs.configure("info", "json", stream=out)

    async def main() -> None:
        async with WorkerPool(1, on_log=logs.forward) as pool:
            await pool.run(logs.configure_worker)
            await pool.run(log_in_worker)
            with anyio.fail_after(10):
                while "ByteCounts" not in out.getvalue():
                    await anyio.sleep(0.02)

    anyio.run(main)
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    event = next(e for e in events if e["event"] == "slow codec")
    assert event["level"] == "warning" and event["seconds"] == 2.5 and event["worker"] == 0
    assert event["source"] == "worker" and event["path"].startswith("<object")
    library = next(e for e in events if "ByteCounts" in e["event"])
    assert library["event"] == "<TiffPage 0> missing ByteCounts tag"
    assert library["level"] == "error" and library["logger"] == "tifffile"
    assert library["worker"] == 0 and library["source"] == "worker"
    assert not any("below the level" in e["event"] for e in events)


def test_the_service_sets_up_its_workers_to_forward_their_logs(tmp_path, monkeypatch):
    from pyramidd.service.config import load_config
    from pyramidd.service.service import Service
    from pyramidd.service.testing import write_config

    here = str(Path(__file__).parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")])))
    out = io.StringIO()
    logs.configure("info", "json", stream=out)
    config = load_config(write_config(
        tmp_path / "c.toml", [{"folder": str(tmp_path / "d"), "output": str(tmp_path / "o"),
                               "settle_time": 0, "min_age": 0}],
        state_dir=str(tmp_path / "s"), workers=1, http={"enabled": False}))

    async def build(input, output, options, *, pool, progress=None):
        await pool.run(log_in_worker)
        return {"tiles": 0}

    async def main() -> None:
        service = Service(config, build=build)
        async with anyio.create_task_group() as tg:
            await tg.start(service.run)
            (tmp_path / "d" / "a.png").write_bytes(b"x")
            with anyio.fail_after(20):
                while "slow codec" not in out.getvalue():
                    await anyio.sleep(0.05)
            service.request_stop()

    anyio.run(main)
    assert any('"slow codec"' in line and '"source": "worker"' in line
               for line in out.getvalue().splitlines())
