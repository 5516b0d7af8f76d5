"""End-to-end: the real ``pyramidd run`` process with the real engine and render workers.

Each test writes a config into ``tmp_path``, starts the service with a fake
``NOTIFY_SOCKET`` (so readiness is READY=1, as under systemd), drops files, and
looks at the folders, the log and the status server. Fixtures kill every process
they started, render workers included.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from pyramidd import shm
from pyramidd.service.journal import replay
from pyramidd.service.testing import (
    ServiceProcess,
    deadline,
    pyramidd_command,
    wait_until,
    write_config,
)


@pytest.fixture(autouse=True)
def _deadline() -> Iterator[None]:
    with deadline(180):
        yield


def png(path: Path, width: int = 300, height: int = 200, seed: int = 0) -> bytes:
    """A colourful PNG (a gradient with a seed-dependent tint); returns its bytes."""
    y, x = np.mgrid[0:height, 0:width]
    img = np.stack([x * 255 // max(width, 1), y * 255 // max(height, 1),
                    np.full_like(x, (seed * 37) % 256)], -1).astype(np.uint8)
    Image.fromarray(img).save(path, format="PNG")
    return path.read_bytes()


def dzi_tiles(width: int, height: int, tile: int) -> int:
    """Tiles of a DZI pyramid of that size (levels down to 1x1)."""
    total = 0
    levels = math.ceil(math.log2(max(width, height))) + 1
    for level in range(levels):
        scale = 2 ** (levels - 1 - level)
        w, h = math.ceil(width / scale), math.ceil(height / scale)
        total += math.ceil(w / tile) * math.ceil(h / tile)
    return total


def tile_files(out: Path, name: str) -> int:
    return sum(len(files) for _, _, files in os.walk(out / f"{name}_files"))


def listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder)) if folder.exists() else []


class Env:
    """A service under test with one or more watches in ``tmp_path``."""

    def __init__(self, tmp_path: Path, watches: list[dict[str, Any]] | None = None,
                 **settings: Any) -> None:
        self.root = tmp_path
        self.drop = tmp_path / "drop"
        self.out = tmp_path / "out"
        self.watches = watches or [{"name": "main", "folder": str(self.drop),
                                    "output": str(self.out), "settle_time": 0.3,
                                    "min_age": 0.0, "tile_size": 64}]
        settings.setdefault("state_dir", str(tmp_path / "state"))
        settings.setdefault("workers", 2)
        settings.setdefault("rescan_interval", 1.0)
        settings.setdefault("stop_timeout", 10)
        settings.setdefault("http", {"bind": "127.0.0.1:0"})
        settings.setdefault("log", {"format": "json", "level": "info"})
        self.settings = settings
        self.config = write_config(tmp_path / "pyramidd.toml", self.watches, **dict(settings))
        self.service = ServiceProcess(tmp_path, self.config)

    def rewrite(self, **changes: Any) -> None:
        write_config(self.config, self.watches, **{**self.settings, **changes})

    def done_events(self, name: str | None = None, wait_for: int = 0) -> list[dict[str, Any]]:
        """The "job done" log events (of input ``name``), after waiting for ``wait_for`` of them.

        The event is logged after the input reached done/, so a test that saw the file
        there may be a moment ahead of the log.
        """
        def events() -> list[dict[str, Any]]:
            return [e for e in self.service.events()
                    if e.get("event") == "job done" and (name is None or e.get("input") == name)]

        if wait_for:
            wait_until(lambda: len(events()) >= wait_for, 10, f"{wait_for} 'job done' events")
        return events()

    def journal_open(self) -> dict[str, Any]:
        return replay(Path(self.settings["state_dir"]) / "journal.jsonl")


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Any]:
    made: list[Env] = []

    def make(**kw: Any) -> Env:
        e = Env(tmp_path, **kw)
        made.append(e)
        return e

    yield make
    for e in made:
        e.service.close()


def wait_settled(e: Env, done: int = 0, failed: int = 0, timeout: float = 60) -> None:
    """Wait until done/ and failed/ hold that many inputs and nothing is in processing/."""
    def ok() -> bool:
        d = [n for n in listing(e.drop / "done")]
        f = [n for n in listing(e.drop / "failed") if not n.endswith(".error.json")]
        return len(d) == done and len(f) == failed and not listing(e.drop / "processing")

    wait_until(ok, timeout, f"{done} done and {failed} failed in {e.drop}")


def children(pid: int) -> list[int]:
    """Child processes of ``pid`` (render workers of the service)."""
    kids: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                kids += [int(p) for p in f.read().split()]
    except FileNotFoundError:
        pass
    return kids


# --------------------------------------------------------------------------- settling


def test_slow_writer_is_one_job_started_after_the_file_settled(env):
    e = env()
    e.watches[0]["settle_time"] = 1.0
    e.rewrite()
    svc = e.service.start()
    data = png(e.root / "source.png", 400, 300)
    chunks = [data[i:i + len(data) // 5 + 1] for i in range(0, len(data), len(data) // 5 + 1)]
    target = e.drop / "slow.png"
    with open(target, "wb") as f:
        for chunk in chunks:
            f.write(chunk)
            f.flush()
            time.sleep(0.5)  # slower than nothing, faster than the settle time
    last_write = os.stat(target).st_mtime
    wait_settled(e, done=1)
    started = [ev for ev in svc.events() if ev.get("event") == "job started"]
    assert len(started) == 1 and len(e.done_events("slow.png", wait_for=1)) == 1
    t = datetime.fromisoformat(started[0]["timestamp"]).timestamp()
    assert t >= last_write + 1.0 - 0.05, "the job started before the file had settled"
    assert tile_files(e.out, "slow") == dzi_tiles(400, 300, 64)
    assert (e.out / "slow.dzi").exists()


def test_rename_into_place_and_done_markers_are_processed_once(env, tmp_path):
    marked = tmp_path / "marked"
    e = env(watches=[
        {"name": "main", "folder": str(tmp_path / "drop"), "output": str(tmp_path / "out"),
         "settle_time": 0.3, "min_age": 0.0, "tile_size": 64},
        {"name": "marked", "folder": str(marked), "output": str(tmp_path / "out2"),
         "settle_time": 30.0, "min_age": 30.0, "done_marker": True, "tile_size": 64},
    ])
    e.service.start()
    png(e.drop / ".a.png.part")
    os.rename(e.drop / ".a.png.part", e.drop / "a.png")
    png(e.drop / "b.png.tmp")
    time.sleep(1.0)
    os.rename(e.drop / "b.png.tmp", e.drop / "b.png")
    png(marked / "m.png")
    time.sleep(1.5)
    assert listing(marked) == ["done", "failed", "m.png", "processing"], "taken without its marker"
    (marked / "m.png.done").touch()
    wait_settled(e, done=2)
    wait_until(lambda: listing(marked / "done") == ["m.png"], 30, "the marked file")
    assert not (marked / "m.png.done").exists()
    for name in ("a.png", "b.png", "m.png"):
        assert len(e.done_events(name, wait_for=1)) == 1, name
    assert len([ev for ev in e.service.events() if ev.get("event") == "job started"]) == 3


# --------------------------------------------------------------------------- crashes

CRASH_POINTS = ["after-claim-intent", "after-claim", "after-attempt", "mid-build",
                "after-build", "after-built", "after-move"]


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_kill9_at_a_crash_point_then_restart_processes_every_input_once(env, point):
    e = env()
    e.drop.mkdir()
    svc = e.service
    svc.start(env={"PYRAMIDD_CRASH_AT": f"{point}@a.png"})
    owners = {svc.proc.pid, *children(svc.proc.pid)}
    png(e.drop / "a.png", 500, 400, seed=1)
    png(e.drop / "b.png", 300, 200, seed=2)
    assert svc.wait(60) == -signal.SIGKILL, svc.log_text()
    svc.wait_group_gone()
    svc.start()
    wait_settled(e, done=2)
    assert listing(e.drop / "done") == ["a.png", "b.png"]  # no a-1.png: never done twice
    assert listing(e.drop / "failed") == []
    assert tile_files(e.out, "a") == dzi_tiles(500, 400, 64)
    assert tile_files(e.out, "b") == dzi_tiles(300, 200, 64)
    assert [n for n in listing(e.out) if "staging" in n] == []
    wait_until(lambda: e.journal_open() == {}, 10, "an empty journal")
    # One summary event per job, whichever run finished it.
    assert len(e.done_events("a.png", wait_for=1)) == 1, svc.log_text()
    left = [n for n in listing(shm.SHM_DIR) if n.startswith(shm.PREFIX)
            and int(n[len(shm.PREFIX):].split("_")[0]) in owners]
    assert left == [], f"shared memory of the killed service left: {left}"


def test_start_removes_shared_memory_and_staging_of_dead_processes(env):
    e = env()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    segment = shm.create(4096, owner_pid=dead.pid)
    segment.close()
    e.out.mkdir(parents=True)
    stale = e.out / f".a_files.pyramidd-staging-{dead.pid}-dead"
    (stale / "new").mkdir(parents=True)
    (stale / "lock").touch()
    e.service.start()
    assert not (shm.SHM_DIR / segment.name).exists()
    assert not stale.exists()


def test_a_render_worker_killed_mid_job_is_retried(env):
    e = env(workers=1, retries=1)
    e.drop.mkdir()
    svc = e.service.start()
    y, x = np.mgrid[0:2400, 0:2400]
    img = np.stack([x % 256, y % 256, (x + y) % 256], -1).astype(np.uint8)
    Image.fromarray(img).save(e.root / "big.png")
    os.rename(e.root / "big.png", e.drop / "big.png")

    def building() -> bool:
        jobs = svc.status()["jobs"]
        return bool(jobs) and jobs[0]["done"] > 0

    wait_until(building, 60, "the build to write tiles", interval=0.02)
    victims = children(svc.proc.pid)
    assert victims
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    wait_settled(e, done=1, timeout=120)
    retries = [ev for ev in svc.events() if ev.get("event") == "attempt failed, retrying"]
    assert len(retries) == 1 and "died" in retries[0]["error"]
    assert e.done_events("big.png", wait_for=1)[0]["attempts"] == 2
    assert svc.status()["totals"]["worker_restarts"] >= 1


def test_a_worker_dying_on_every_attempt_fails_the_job_and_others_are_served(env):
    e = env(retries=1)
    e.drop.mkdir()
    svc = e.service.start(env={"PYRAMIDD_CRASH_AT": "worker-crash@doomed*"})
    png(e.drop / "doomed.png")
    png(e.drop / "fine.png", seed=3)
    wait_settled(e, done=1, failed=1)
    report = json.loads((e.drop / "failed" / "doomed.png.error.json").read_text())
    assert report["kind"] == "worker-crashed" and report["attempts"] == 2
    assert "died" in report["error"] and report["what_to_do"]
    assert listing(e.drop / "done") == ["fine.png"]
    png(e.drop / "later.png", seed=4)
    wait_settled(e, done=2, failed=1)
    status = svc.status()
    assert status["totals"]["worker_restarts"] >= 2 and status["state"] == "ready"
    assert status["recent_failures"][0]["kind"] == "worker-crashed"


# --------------------------------------------------------------------------- bad inputs


def test_bad_and_hostile_inputs_fail_cleanly_and_nothing_escapes_the_output(env, tmp_path):
    e = env(watches=[{"name": "main", "folder": str(tmp_path / "drop"),
                      "output": str(tmp_path / "out"), "settle_time": 0.3, "min_age": 0.0,
                      "tile_size": 64, "max_pixels": 200_000}],
            jobs=2)
    e.drop.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    png(outside / "secret.png")
    good = png(tmp_path / "good.png")
    before = sorted(str(p) for p in tmp_path.rglob("*") if "drop" not in p.parts)
    e.service.start()
    (e.drop / "empty.png").write_bytes(b"")
    (e.drop / "truncated.png").write_bytes(good[: len(good) // 2])
    (e.drop / "corrupt.png").write_bytes(good[:40] + os.urandom(2000))
    (e.drop / "notes.png").write_bytes(b"hello, this is not an image\n" * 50)
    png(e.drop / "bomb.png", 1000, 1000)  # 1e6 pixels, over max_pixels
    os.symlink(outside / "secret.png", e.drop / "link.png")
    hostile = ["a\\..\\..\\x.png", "a\nb.png", os.fsdecode(b"\xff\xfe.png"), "-rf.png",
               "x" * 240 + ".png"]
    for name in hostile:
        (e.drop / name).write_bytes(good)
    (e.drop / "..\\..\\y.png").write_bytes(good)  # a hidden name: never taken
    wait_settled(e, done=len(hostile), failed=6, timeout=90)

    def report(name: str) -> dict[str, Any]:
        return json.loads((e.drop / "failed" / (name + ".error.json")).read_text())

    kinds = {n: report(n)["kind"] for n in ("empty.png", "truncated.png", "corrupt.png",
                                             "notes.png", "bomb.png", "link.png")}
    assert kinds["bomb.png"] == "too-large" and kinds["link.png"] == "symlink"
    for name in ("empty.png", "truncated.png", "corrupt.png", "notes.png"):
        assert kinds[name] in ("bad-input", "unsupported-input"), (name, report(name))
    for name in kinds:
        r = report(name)
        assert r["error"] and r["what_to_do"] and "Traceback" not in r["error"]
    assert (outside / "secret.png").exists()
    assert "..\\..\\y.png" in listing(e.drop)
    outputs = listing(e.out)
    assert all("/" not in n and not n.startswith((".", "-")) for n in outputs)
    assert {"x.dzi", "a_b.dzi", "rf.dzi"} <= set(outputs)
    after = sorted(str(p) for p in tmp_path.rglob("*")
                   if "drop" not in p.parts and "out" not in p.parts and "state" not in p.parts)
    assert [p for p in after if p not in before and not p.startswith(str(tmp_path / "notify"))
            and not p.endswith("service.log")] == []


def test_a_full_disk_fails_the_job_cleanly_and_the_service_lives_on(env, tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=192k", "tmpfs", str(small)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    e = None
    try:
        e = env(watches=[
            {"name": "full", "folder": str(tmp_path / "drop"), "output": str(small),
             "settle_time": 0.3, "min_age": 0.0, "tile_size": 64, "suffix": "png"},
            {"name": "roomy", "folder": str(tmp_path / "drop2"), "output": str(tmp_path / "out2"),
             "settle_time": 0.3, "min_age": 0.0, "tile_size": 64}])
        e.service.start()
        rng = np.random.default_rng(0)
        Image.fromarray(rng.integers(0, 255, (700, 700, 3), dtype=np.uint8)).save(e.drop / "noise.png")
        wait_settled(e, failed=1, timeout=90)
        r = json.loads((e.drop / "failed" / "noise.png.error.json").read_text())
        assert r["kind"] == "no-space" and "disk full" in r["error"], r
        assert listing(small) == []  # staging removed, no partial pyramid
        png(tmp_path / "drop2" / "ok.png")
        wait_until(lambda: listing(tmp_path / "drop2" / "done") == ["ok.png"], 60, "the other watch")
        assert e.service.proc.poll() is None
    finally:
        if e is not None:
            e.service.close()
        subprocess.run(["umount", "-l", str(small)], capture_output=True)


# --------------------------------------------------------------------------- load


def test_a_thousand_files_at_once_are_all_processed_once_with_bounded_memory(env, tmp_path):
    e = env(watches=[{"name": "main", "folder": str(tmp_path / "drop"),
                      "output": str(tmp_path / "out"), "settle_time": 0.2, "min_age": 0.0,
                      "tile_size": 256, "suffix": "png"}],
            queue_size=16, jobs=2, rescan_interval=2.0)
    staging = tmp_path / "staging"
    staging.mkdir()
    small = np.zeros((8, 8, 3), np.uint8)
    for i in range(1000):
        small[:] = (i % 256, i // 4 % 256, 7)
        Image.fromarray(small).save(staging / f"f{i:04d}.png")
    svc = e.service.start()
    e.drop.mkdir(exist_ok=True)
    for name in os.listdir(staging):
        os.rename(staging / name, e.drop / name)
    peak_waiting = 0

    def all_done() -> bool:
        nonlocal peak_waiting
        peak_waiting = max(peak_waiting, svc.status()["queue"]["waiting"])
        return len(listing(e.drop / "done")) == 1000

    wait_until(all_done, 170, "1000 jobs", interval=0.5)
    assert listing(e.drop / "failed") == [] and listing(e.drop / "processing") == []
    assert len([n for n in listing(e.out) if n.endswith(".dzi")]) == 1000
    names = [ev["input"] for ev in e.done_events(wait_for=1000)]
    assert len(names) == 1000 and len(set(names)) == 1000
    assert peak_waiting <= 16
    with open(f"/proc/{svc.proc.pid}/status") as f:
        hwm = int(re.search(r"VmHWM:\s+(\d+) kB", f.read()).group(1))
    assert hwm < 400 * 1024, f"service peak RSS {hwm} kB"


# --------------------------------------------------------------------------- signals, notify, status


def drop_gradient(e, side: int) -> None:
    """Drop ``m.png``, a ``side`` x ``side`` gradient, into the watch's folder at once."""
    y, x = np.mgrid[0:side, 0:side]
    Image.fromarray(np.stack([x % 256, y % 256, x * 0], -1).astype(np.uint8)).save(e.root / "m.png")
    os.rename(e.root / "m.png", e.drop / "m.png")


def test_sigterm_finishes_the_running_job_and_exits_0(env):
    e = env(stop_timeout=90)
    e.drop.mkdir()
    svc = e.service.start()
    drop_gradient(e, 1500)
    wait_until(lambda: svc.status()["jobs"], 60, "the job to start", interval=0.02)
    svc.signal(signal.SIGTERM)
    png(e.drop / "late.png")
    assert svc.wait(30) == 0
    assert listing(e.drop / "done") == ["m.png"] and "late.png" in listing(e.drop)
    assert svc.notify.seen("STOPPING", "1")
    assert e.journal_open() == {}
    svc.wait_group_gone()


def test_sigterm_to_the_whole_group_as_systemd_sends_it_is_a_stop_not_a_crash(env):
    # KillMode=control-group: the workers and the fork server get SIGTERM too. A
    # worker that died of it was taken for a crash: the job retried on new workers
    # during the stop, its attempts counted, and three stops failed a good input.
    e = env(stop_timeout=90)
    e.drop.mkdir()
    svc = e.service.start()
    drop_gradient(e, 2500)
    wait_until(lambda: any(j.get("done") for j in svc.status()["jobs"]), 60,
               "the job to write tiles", interval=0.02)
    os.killpg(svc.proc.pid, signal.SIGTERM)
    assert svc.wait(60) == 0, svc.log_text()
    assert listing(e.drop / "done") == ["m.png"]
    (done,) = e.done_events("m.png", wait_for=1)
    assert done["attempts"] == 1
    assert not [ev for ev in svc.events() if "attempt failed" in ev.get("event", "")]
    svc.wait_group_gone()


@pytest.mark.parametrize("connection", ["kept open", "closed"])
def test_sigterm_right_after_an_http_request_exits_0_without_tracebacks(env, connection):
    """As after ``pyramidd status`` and ``systemctl stop``: the request's connection is
    still open at the server (keep-alive) when the stop begins."""
    import http.client

    e = env()
    svc = e.service.start()
    address = json.loads((svc.state_dir() / "http.json").read_text())
    conn = http.client.HTTPConnection(address["host"], address["port"], timeout=5)
    conn.request("GET", "/status")
    response = conn.getresponse()
    assert response.status == 200 and json.loads(response.read())["state"] == "ready"
    if connection == "closed":
        conn.close()
    svc.signal(signal.SIGTERM)
    assert svc.wait(30) == 0, svc.log_text()
    conn.close()
    assert "Traceback" not in svc.log_text()
    assert any(event.get("event") == "stopped" for event in svc.events())


def test_sigterm_past_the_deadline_checkpoints_and_the_next_start_finishes(env):
    e = env(stop_timeout=0.5, workers=1)
    e.drop.mkdir()
    svc = e.service.start()
    # Large enough that one worker is still building it 0.5 s after SIGTERM.
    drop_gradient(e, 4000)
    wait_until(lambda: svc.status()["jobs"], 60, "the job to start", interval=0.02)
    svc.signal(signal.SIGTERM)
    assert svc.wait(30) == 0
    assert listing(e.drop / "processing") == ["m.png"]
    assert [j.state for j in e.journal_open().values()] == ["claimed"]
    assert [n for n in listing(e.out) if not n.startswith(".")] == []
    svc.wait_group_gone()
    svc.start()
    wait_settled(e, done=1, timeout=120)
    assert tile_files(e.out, "m") == dzi_tiles(4000, 4000, 64)
    assert [n for n in listing(e.out) if "staging" in n] == []


def test_sighup_reloads_and_a_bad_config_keeps_the_old_one(env, tmp_path):
    e = env()
    svc = e.service.start()
    good = e.config.read_text()
    e.config.write_text(good.replace("tile_size = 64", "tile_size = 0"))
    svc.signal(signal.SIGHUP)
    wait_until(lambda: any(ev.get("event", "").startswith("config reload rejected")
                           for ev in svc.events()), 20, "the rejection")
    rejected = [ev for ev in svc.events() if ev.get("event", "").startswith("config reload rejected")]
    assert "tile_size" in rejected[0]["error"]
    png(e.drop / "a.png")
    wait_settled(e, done=1)
    assert tile_files(e.out, "a") == dzi_tiles(300, 200, 64)  # old profile still in force
    e.config.write_text(good.replace("tile_size = 64", "tile_size = 128"))
    svc.signal(signal.SIGHUP)
    wait_until(lambda: any(ev.get("event") == "config reloaded" for ev in svc.events()), 20, "reload")
    png(e.drop / "b.png")
    wait_settled(e, done=2)
    assert tile_files(e.out, "b") == dzi_tiles(300, 200, 128)
    messages = [m for m in svc.notify.poll() if "STATUS" not in m or len(m) > 1]
    order = [k for m in messages for k in ("READY", "RELOADING") if k in m]
    assert order == ["READY", "RELOADING", "READY", "RELOADING", "READY"]
    assert svc.proc.poll() is None


def test_notify_messages_watchdog_and_status_command(env):
    e = env()
    svc = e.service.start(env={"WATCHDOG_USEC": "1000000"})
    ready = [m for m in svc.notify.poll() if m.get("READY") == "1"][0]
    assert ready["MAINPID"] == str(svc.proc.pid) and "waiting" in ready["STATUS"]
    wait_until(lambda: sum("WATCHDOG" in m for m in svc.notify.poll()) >= 2, 10, "watchdog pings")
    png(e.drop / "a.png")
    wait_settled(e, done=1)
    wait_until(lambda: any("1 done" in m.get("STATUS", "") for m in svc.notify.poll()), 10,
               "STATUS= with the count")
    code, body = svc.http("/healthz")
    assert code == 200 and json.loads(body)["status"] == "ok"
    code, body = svc.http("/metrics")
    assert code == 200 and b'pyramidd_jobs_total{outcome="done",watch="main"} 1.0' in body
    out = subprocess.run([*pyramidd_command(), "status", "--config", str(e.config)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "ready" in out.stdout and "1 done" in out.stdout and "watch main" in out.stdout
    as_json = subprocess.run([*pyramidd_command(), "status", "--json", "--config", str(e.config)],
                             capture_output=True, text=True, timeout=30)
    assert json.loads(as_json.stdout)["totals"]["done"] == 1
    svc.signal(signal.SIGTERM)
    assert svc.wait(30) == 0
    gone = subprocess.run([*pyramidd_command(), "status", "--config", str(e.config)],
                          capture_output=True, text=True, timeout=30)
    assert gone.returncode == 1 and "no running service" in gone.stderr


def test_bad_config_at_start_names_the_key_and_exits_2(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text(f'state_dir = "{tmp_path}"\nworkers = -2\n[[watch]]\nfolder = "d"\n')
    out = subprocess.run([*pyramidd_command(), "run", "--config", str(config)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert "workers: must be 0 or more" in out.stderr and "watch[0].output: missing" in out.stderr


def test_a_second_service_on_the_same_state_dir_is_refused(env):
    e = env()
    e.service.start()
    second = ServiceProcess(e.root, e.config)
    try:
        second.start(wait_ready=False)
        assert second.wait(30) == 2
        assert "another pyramidd service uses the state folder" in second.log_text()
    finally:
        second.close()


def test_a_second_drop_of_the_same_name_replaces_the_pyramid_and_keeps_both_inputs(env):
    e = env()
    e.service.start()
    png(e.drop / "a.png", 300, 200)
    wait_settled(e, done=1)
    assert tile_files(e.out, "a") == dzi_tiles(300, 200, 64)
    png(e.drop / "a.png", 500, 400, seed=5)
    wait_settled(e, done=2)
    assert listing(e.drop / "done") == ["a-1.png", "a.png"]
    assert tile_files(e.out, "a") == dzi_tiles(500, 400, 64)
    assert 'Width="500"' in (e.out / "a.dzi").read_text()
    assert [n for n in listing(e.out) if n.startswith(".")] == []


# --------------------------------------------------------------------------- plugins


@pytest.mark.parametrize("disabled", [[], ["viewer"]])
def test_plugins_disabled_in_the_config_are_not_loaded(env, disabled):
    e = env(disabled_plugins=disabled)
    e.service.start()
    png(e.drop / "a.png", 300, 200)
    wait_settled(e, done=1)
    assert (e.out / "a.dzi").exists()
    assert (e.out / "a.html").exists() == (not disabled)  # the viewer plugin's page


# --------------------------------------------------------------------------- registration


def metrics_after_job(e: Env) -> bytes:
    """/metrics once no job runs: a job's figures are counted just after its input
    reaches done/, so a test that saw the file there may be a moment early."""
    def idle() -> bytes | None:
        _, body = e.service.http("/metrics")
        return body if b"pyramidd_jobs_running 0.0" in body else None

    return wait_until(idle, 10, "no job running in /metrics")


def test_image_with_a_points_sidecar_is_warped_and_its_reads_are_metrics(env, tmp_path):
    """A scan dropped with its QGIS .points file becomes a rectified pyramid; what the
    warp read from the source (and any thrash fallback) shows in /metrics."""
    import re

    e = env()
    e.service.start()
    png(tmp_path / "scan.png", 400, 300)
    # a quarter turn and a shift: map (x, y) = source (y, x) + (1000, 2000)
    rows = ["mapX,mapY,sourceX,sourceY,enable,dX,dY,residual"]
    for sx, sy in [(0, 0), (399, 0), (0, 299), (399, 299), (200, 150), (50, 250)]:
        rows.append(f"{1000 + sy},{2000 + sx},{sx},{-sy},1,0,0,0")
    (tmp_path / "scan.png.points").write_text("\n".join(rows) + "\n")
    os.rename(tmp_path / "scan.png.points", e.drop / "scan.png.points")
    os.rename(tmp_path / "scan.png", e.drop / "scan.png")
    wait_settled(e, done=2)  # the input and its sidecar
    assert (e.out / "scan.dzi").exists()
    assert sorted(os.listdir(e.drop / "done")) == ["scan.png", "scan.png.points"]
    body = metrics_after_job(e)
    read = re.search(rb'pyramidd_source_bytes_read_total\{watch="main"\} ([\d.e+]+)', body)
    assert read and float(read.group(1)) > 0, body.decode()[-2000:]
    assert re.search(rb'pyramidd_source_fallbacks_total\{watch="main"\} 0\.0', body)


def test_gcps_in_the_watch_profile_warp_every_input_of_the_folder(env, tmp_path):
    """GCPs given once in the config (a scanner that always sits at the same angle):
    each image dropped into that folder is warped with them, no sidecar needed."""
    drop, out = tmp_path / "scans", tmp_path / "out"
    # a quarter turn: map (x, y) = (line, pixel), in GDAL's pixel/line
    gcps = [[px, ln, ln, px] for px, ln in [(0, 0), (400, 0), (0, 300), (400, 300)]]
    e = env(watches=[{"name": "scans", "folder": str(drop), "output": str(out),
                      "settle_time": 0.3, "min_age": 0.0, "tile_size": 64,
                      "warp": {"gcps": gcps, "order": 1, "resampler": "bilinear"}}])
    e.drop = drop
    e.service.start()
    png(tmp_path / "scan.png", 400, 300)
    os.rename(tmp_path / "scan.png", drop / "scan.png")
    wait_settled(e, done=1)
    dzi = (out / "scan.dzi").read_text()
    # turned a quarter: the 400x300 input comes out 300 wide and 400 high
    assert 'Width="300"' in dzi and 'Height="400"' in dzi, dzi


def test_geotiff_with_embedded_gcps_is_warped_without_a_sidecar(env, tmp_path):
    """A GeoTIFF whose tiepoints are GCPs becomes a rectified pyramid on its own."""
    import tifffile

    e = env()
    e.service.start()
    w, h = 400, 300
    img = np.random.default_rng(7).integers(0, 256, (h, w, 3), dtype=np.uint8)
    # tiepoints of a 30° turn at one map unit per pixel
    c, s = math.cos(math.radians(30)), math.sin(math.radians(30))
    flat = [v for px, ln in [(0, 0), (w, 0), (0, h), (w, h)]
            for v in (px, ln, 0.0, px * c - ln * s, -(px * s + ln * c), 0.0)]
    tifffile.imwrite(tmp_path / "map.tif", img, extratags=[(33922, 12, len(flat), flat, True)])
    os.rename(tmp_path / "map.tif", e.drop / "map.tif")
    wait_settled(e, done=1)
    dzi = (e.out / "map.dzi").read_text()
    width, height = (int(re.search(rf'{k}="(\d+)"', dzi).group(1)) for k in ("Width", "Height"))
    # the turned image's bounding box, not the 4:3 input
    assert width / height == pytest.approx((w * c + h * s) / (w * s + h * c), rel=0.02), dzi
    body = metrics_after_job(e)
    read = re.search(rb'pyramidd_source_bytes_read_total\{watch="main"\} ([\d.e+]+)', body)
    assert read and float(read.group(1)) > 0, body.decode()[-2000:]
