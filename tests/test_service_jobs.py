"""The service in-process with a stand-in engine: retries, failures, back-pressure, stop, reload.

The stand-in keeps these fast and lets a test decide what a build does from the
input's bytes; the end-to-end tests run the real process with the real engine.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from pyramidd.errors import InputError, WorkerCrashed
from pyramidd.service import crashpoints
from pyramidd.service.config import ServiceConfig, load_config
from pyramidd.service.journal import replay
from pyramidd.service.notify import Notifier
from pyramidd.service.service import Service
from pyramidd.service.status import render
from pyramidd.service.testing import deadline, write_config

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _deadline():
    with deadline(60):
        yield


class FakePool:
    """Stands in for WorkerPool: runs functions in-process, a 'dying worker' raises WorkerCrashed."""

    size = 1

    def __init__(self, workers: int) -> None:
        self.restarts = 0

    async def __aenter__(self) -> FakePool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        pass

    async def run(self, fn: Any, *args: Any) -> Any:
        if fn is crashpoints.die_in_worker:
            self.restarts += 1
            raise WorkerCrashed("render worker 0 died (killed by signal 9)")
        return fn(*args)


class StandIn:
    """A build whose behaviour the input's content picks; it records what it built."""

    def __init__(self) -> None:
        self.built: list[str] = []
        self.running = 0
        self.max_running = 0
        self.gate = anyio.Event()

    async def __call__(self, input: Path, output: Path, options: Any, *, pool: Any,
                       progress: Any = None) -> dict[str, Any]:
        data = await anyio.Path(input).read_bytes()
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            if data.startswith(b"crash"):
                pool.restarts += 1
                raise WorkerCrashed("render worker 0 (pid 1) died (killed by signal 9)")
            if data.startswith(b"bad"):
                raise InputError(f"{input.name}: truncated image")
            if data.startswith(b"hang"):
                await anyio.sleep_forever()
            if data.startswith(b"notice") and hasattr(progress, "notice"):
                progress(1, 4)
                progress.notice("warp fallback: narrower blocks", {"fallbacks": 1})
            if data.startswith((b"gate", b"notice")):
                await self.gate.wait()
            for i in range(1, 5):
                if progress:
                    progress(i, 4)
                await anyio.sleep(0.005)
            assert options.extra["replace"] is True
            await anyio.Path(str(output) + ".out").write_bytes(data)
            self.built.append(input.name)
            return {"levels": 1, "tiles": 4, "bytes": len(data), "seconds": 0.01}
        finally:
            self.running -= 1


def make_config(tmp_path: Path, **settings: Any) -> ServiceConfig:
    watches = settings.pop("watches", None) or [
        {"name": "w", "folder": str(tmp_path / "drop"), "output": str(tmp_path / "out"),
         "settle_time": 0.05, "min_age": 0}]
    settings.setdefault("state_dir", str(tmp_path / "state"))
    settings.setdefault("http", {"enabled": False})
    settings.setdefault("rescan_interval", 0.5)
    settings.setdefault("stop_timeout", 5)
    path = write_config(tmp_path / "pyramidd.toml", watches, **settings)
    return load_config(path)


@contextlib.asynccontextmanager
async def running(service: Service) -> AsyncIterator[Service]:
    async with anyio.create_task_group() as tg:
        await tg.start(service.run)
        yield service
        service.request_stop()


async def until(predicate: Any, timeout: float = 20.0, what: str = "condition") -> None:
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.02)


def listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder)) if folder.exists() else []


async def test_files_are_built_moved_to_done_and_failures_explained(tmp_path):
    config = make_config(tmp_path)
    build = StandIn()
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "a.png").write_bytes(b"fine")
    (drop / "b.png").write_bytes(b"bad")
    (drop / ".hidden.png").write_bytes(b"fine")
    async with running(Service(config, build=build, pool_factory=FakePool)) as service:
        (drop / "c.png.part").write_bytes(b"fine")
        await until(lambda: service.state.done + service.state.failed == 2)
        os.rename(drop / "c.png.part", drop / "c.png")
        await until(lambda: service.state.done == 2)
    assert sorted(build.built) == ["a.png", "c.png"]
    assert listing(drop / "done") == ["a.png", "c.png"]
    assert listing(drop / "failed") == ["b.png", "b.png.error.json"]
    assert listing(drop / "processing") == []
    assert ".hidden.png" in listing(drop)
    report = json.loads((drop / "failed" / "b.png.error.json").read_text())
    assert report["kind"] == "bad-input" and "truncated" in report["error"]
    assert "drop a repaired copy" in report["what_to_do"] and report["attempts"] == 1
    assert (tmp_path / "out" / "a.out").read_bytes() == b"fine"
    assert replay(config.state_dir / "journal.jsonl") == {}


async def test_worker_crashes_are_retried_then_failed_and_others_still_served(tmp_path):
    config = make_config(tmp_path, retries=2)
    build = StandIn()
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "boom.png").write_bytes(b"crash")
    (drop / "ok.png").write_bytes(b"fine")
    async with running(Service(config, build=build, pool_factory=FakePool)) as service:
        await until(lambda: service.state.done + service.state.failed == 2)
        metrics = service.metrics.render().decode()
    report = json.loads((drop / "failed" / "boom.png.error.json").read_text())
    assert report["kind"] == "worker-crashed" and report["attempts"] == 3
    assert "died" in report["error"] and "memory" in report["what_to_do"]
    assert listing(drop / "done") == ["ok.png"]
    assert 'pyramidd_retries_total{watch="w"} 2.0' in metrics
    assert 'pyramidd_failures_total{kind="worker-crashed",watch="w"} 1.0' in metrics


async def test_crash_point_kills_a_worker_through_the_pool(tmp_path, monkeypatch):
    monkeypatch.setenv(crashpoints.ENV, "worker-crash@die*")
    config = make_config(tmp_path, retries=1)
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "die.png").write_bytes(b"fine")
    (drop / "live.png").write_bytes(b"fine")
    async with running(Service(config, build=StandIn(), pool_factory=FakePool)) as service:
        await until(lambda: service.state.done + service.state.failed == 2)
        assert service.state.worker_restarts == 2 or service._ctx.pool.restarts == 2
    assert listing(drop / "failed") == ["die.png", "die.png.error.json"]
    assert listing(drop / "done") == ["live.png"]


async def test_bounded_queue_and_concurrency(tmp_path):
    config = make_config(tmp_path, queue_size=3, jobs=2)
    build = StandIn()
    drop = tmp_path / "drop"
    drop.mkdir()
    for i in range(30):
        (drop / f"f{i:02d}.png").write_bytes(b"gate")
    async with running(Service(config, build=build, pool_factory=FakePool)) as service:
        await until(lambda: build.running == 2 and service._send.statistics().current_buffer_used == 3)
        await anyio.sleep(0.3)  # rescans while full must not claim or queue more
        service._refresh()
        assert service.state.waiting == 3 and len(listing(drop / "processing")) == 2
        assert len([n for n in listing(drop) if n.endswith(".png")]) == 28
        build.gate.set()
        await until(lambda: service.state.done == 30)
    assert build.max_running == 2 and sorted(build.built) == sorted(f"f{i:02d}.png" for i in range(30))


async def test_stop_checkpoints_a_job_past_the_deadline_and_the_next_start_redoes_it(tmp_path):
    config = make_config(tmp_path, stop_timeout=0.3)
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "a.png").write_bytes(b"hang")
    service = Service(config, build=StandIn(), pool_factory=FakePool)
    async with running(service):
        await until(lambda: service.state.running)
    jobs = replay(config.state_dir / "journal.jsonl")
    assert [(j.name, j.state, j.attempts) for j in jobs.values()] == [("a.png", "claimed", 0)]
    assert listing(drop / "processing") == ["a.png"]
    (drop / "processing" / "a.png").write_bytes(b"fine")  # what the next start will find
    build = StandIn()
    async with running(Service(config, build=build, pool_factory=FakePool)) as service:
        await until(lambda: service.state.done == 1)
    assert build.built == ["a.png"] and listing(drop / "done") == ["a.png"]


async def test_stop_waits_for_running_jobs_within_the_deadline(tmp_path):
    config = make_config(tmp_path, stop_timeout=10)
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "a.png").write_bytes(b"gate")
    build = StandIn()
    service = Service(config, build=build, pool_factory=FakePool)
    async with anyio.create_task_group() as tg:
        await tg.start(service.run)
        await until(lambda: service.state.running)
        (drop / "b.png").write_bytes(b"fine")  # arrives during the stop: not taken
        service.request_stop()
        await anyio.sleep(0.2)
        assert service.state.stopping and service.state.running
        build.gate.set()
    assert build.built == ["a.png"] and listing(drop / "done") == ["a.png"]
    assert "b.png" in listing(drop)
    assert replay(config.state_dir / "journal.jsonl") == {}


async def test_a_service_crash_on_every_attempt_ends_in_failed(tmp_path):
    config = make_config(tmp_path, retries=1)
    drop = tmp_path / "drop"
    (drop / "processing").mkdir(parents=True)
    (drop / "processing" / "killer.png").write_bytes(b"fine")
    state = config.state_dir
    state.mkdir()
    (state / "journal.jsonl").write_text(
        '{"op":"claim","id":"1","watch":"w","name":"killer.png","output":"killer","state":"claimed"}\n'
        '{"op":"attempt","id":"1","n":2}\n')
    async with running(Service(config, build=StandIn(), pool_factory=FakePool)) as service:
        await until(lambda: service.state.failed == 1)
    report = json.loads((drop / "failed" / "killer.png.error.json").read_text())
    assert report["kind"] == "service-stopped"


async def test_symlinks_fail_with_a_reason(tmp_path):
    config = make_config(tmp_path)
    drop = tmp_path / "drop"
    drop.mkdir()
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"fine")
    os.symlink(secret, drop / "link.png")
    build = StandIn()
    async with running(Service(config, build=build, pool_factory=FakePool)) as service:
        await until(lambda: service.state.failed == 1)
    report = json.loads((drop / "failed" / "link.png.error.json").read_text())
    assert report["kind"] == "symlink" and build.built == []
    assert secret.read_bytes() == b"fine" and listing(tmp_path / "out") == []


async def test_reload_applies_a_good_config_and_keeps_the_old_one_on_a_bad_one(tmp_path):
    config = make_config(tmp_path)
    sock_path = tmp_path / "notify"
    import socket as socketlib

    sock = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.setblocking(False)
    notifier = Notifier(environ={"NOTIFY_SOCKET": str(sock_path)})
    build = StandIn()
    async with running(Service(config, build=build, pool_factory=FakePool, notifier=notifier)) as service:
        good = config.path.read_text()
        config.path.write_text(good + "bogus = 1\n")
        os.kill(os.getpid(), signal.SIGHUP)
        await until(lambda: service.metrics.reloads.labels("rejected")._value.get() == 1)
        assert [w.name for w in service.config.watches] == ["w"]
        config.path.write_text(good + f'[[watch]]\nname = "second"\nfolder = "{tmp_path / "drop2"}"\n'
                               f'output = "{tmp_path / "out2"}"\nsettle_time = 0.05\nmin_age = 0\n')
        os.kill(os.getpid(), signal.SIGHUP)
        await until(lambda: service.metrics.reloads.labels("ok")._value.get() == 1)
        (tmp_path / "drop2" / "x.png").write_bytes(b"fine")
        await until(lambda: service.state.done == 1)
    assert (tmp_path / "out2" / "x.out").exists()
    messages = []
    while True:
        try:
            messages.append(sock.recv(4096).decode())
        except BlockingIOError:
            break
    sock.close()
    kinds = [m.split("\n")[0] for m in messages if not m.startswith("STATUS=")]
    assert kinds == ["READY=1", "RELOADING=1", "READY=1", "RELOADING=1", "READY=1", "STOPPING=1"]


async def test_http_status_and_metrics(tmp_path):
    config = make_config(tmp_path, http={"bind": "127.0.0.1:0"})
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "a.png").write_bytes(b"bad")
    (drop / os.fsdecode(b"caf\xe9.png")).write_bytes(b"bad")
    async with running(Service(config, build=StandIn(), pool_factory=FakePool)) as service:
        await until(lambda: service.state.failed == 2)
        host, port = service.http_address
        address = json.loads((config.state_dir / "http.json").read_text())
        assert (address["host"], address["port"]) == (host, port)

        def get(path: str) -> bytes:
            with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=5) as r:
                return r.read()

        assert json.loads(await anyio.to_thread.run_sync(get, "/healthz")) == {"status": "ok"}
        status = json.loads(await anyio.to_thread.run_sync(get, "/status"))
        metrics = (await anyio.to_thread.run_sync(get, "/metrics")).decode()
    assert status["state"] == "ready" and status["totals"]["failed"] == 2
    assert sorted(f["input"] for f in status["recent_failures"]) == ["a.png", "caf\\xe9.png"]
    assert status["watches"][0]["name"] == "w"
    assert 'pyramidd_jobs_total{outcome="failed",watch="w"} 2.0' in metrics
    assert "pyramidd_queue_capacity 64.0" in metrics
    assert not (config.state_dir / "http.json").exists()


async def test_a_notice_from_the_source_shows_in_status_while_the_job_runs(tmp_path):
    config = make_config(tmp_path, http={"bind": "127.0.0.1:0"})
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "scan.png").write_bytes(b"notice")
    build = StandIn()
    async with running(Service(config, build=build, pool_factory=FakePool)) as service:
        await until(lambda: any(j.notices for j in service.state.running.values()))
        host, port = service.http_address

        def get(path: str) -> bytes:
            with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=5) as r:
                return r.read()

        status = json.loads(await anyio.to_thread.run_sync(get, "/status"))
        build.gate.set()
        await until(lambda: service.state.done == 1)
    [job] = status["jobs"]
    assert job["name"] == "scan.png" and (job["done"], job["total"]) == (1, 4)
    assert job["notices"] == {"warp fallback: narrower blocks": 1}
    assert job["source_counters"] == {"fallbacks": 1}
    assert "scan.png': 25% (1/4 tiles), attempt 1; warp fallback: narrower blocks" in render(status)


async def test_a_warp_falling_back_is_in_the_running_job_with_the_real_engine(tmp_path):
    """Real engine and render workers: a warp whose cache is far too small trips the
    thrash detector; at each notice the job's status (what /status returns) has it,
    and the journal's record of the finished job counts the same fallbacks."""
    import dataclasses

    import numpy as np

    from pyramidd.engine import build as engine_build
    from pyramidd.options import BuildOptions
    from pyramidd.pool import WorkerPool

    size = 512
    drop = tmp_path / "drop"
    drop.mkdir()
    rows = ["mapX,mapY,sourceX,sourceY,enable,dX,dY,residual"]
    rows += [f"{1000 + ln},{2000 + p},{p},{-ln},1,0,0,0"
             for p, ln in [(0, 0), (size, 0), (0, size), (size, size)]]
    (drop / "scan.npy.points").write_text("\n".join(rows) + "\n")
    # A quarter turn over plain scanlines with 100 RGB lines of cache (JPEG tiles: no
    # alpha band), one output row a step: each row of a 128-pixel tile needs 128 lines.
    warp = {"order": 1, "piece": (size, 1), "band_rows": 1, "thrash_window": 8192,
            "cache_mb": 100 * size * 3 / 2**20}
    config = make_config(tmp_path, workers=2)
    watch = config.watches[0]
    config = dataclasses.replace(config, watches=(dataclasses.replace(
        watch, options=BuildOptions(tile_size=128, extra={"warp": warp})),))
    seen: list[dict[str, Any]] = []
    service: Service

    async def build(input, output, options, *, pool, progress=None):  # type: ignore[no-untyped-def]
        class Spy:
            def __call__(self, done: int, total: int) -> None:
                progress(done, total)

            def notice(self, message: str, counters: Any) -> None:
                progress.notice(message, counters)
                seen.append(service.state.snapshot())

        return await engine_build(input, output, options, pool=pool, progress=Spy())

    tmp = tmp_path / "scan.npy"
    np.save(tmp, np.random.default_rng(4).integers(0, 256, (size, size, 3), dtype=np.uint8))
    service = Service(config, build=build, pool_factory=WorkerPool)
    async with running(service):
        os.rename(tmp, drop / "scan.npy")
        await until(lambda: service.state.done == 1, timeout=120)
    assert seen, "no notice reached the job while it ran"
    [job] = seen[0]["jobs"]
    assert job["name"] == "scan.npy" and job["state"] == "building"
    assert job["notices"] == {"warp fallback: narrower blocks": 1}
    assert job["source_counters"]["fallbacks"] == 1 and job["done"] < job["total"]
    built = [e for e in map(json.loads, (config.state_dir / "journal.jsonl").read_text().splitlines())
             if e.get("op") == "built"]
    assert built[0]["summary"]["source_counters"]["fallbacks"] == len(seen)
    assert (tmp_path / "out" / "scan.dzi").exists()


async def test_watchdog_pings_while_idle_and_stop_while_a_job_hangs(tmp_path):
    import socket as socketlib

    config = make_config(tmp_path, stop_timeout=0.3)
    sock_path = tmp_path / "notify"
    sock = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.setblocking(False)

    def pings() -> int:
        n = 0
        while True:
            try:
                n += sock.recv(4096) == b"WATCHDOG=1"
            except BlockingIOError:
                return n

    notifier = Notifier(environ={"NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "400000"})
    drop = tmp_path / "drop"
    drop.mkdir()
    service = Service(config, build=StandIn(), pool_factory=FakePool, notifier=notifier)
    async with running(service):
        await anyio.sleep(0.8)
        assert pings() >= 2  # idle: alive
        (drop / "stuck.png").write_bytes(b"hang")
        await until(lambda: service.state.running)
        await anyio.sleep(0.6)  # longer than the watchdog period: the job is stuck
        pings()
        await anyio.sleep(1.0)
        assert pings() == 0  # withheld: systemd would restart the service
    sock.close()


async def test_sidecars_travel_with_their_input(tmp_path):
    config = make_config(tmp_path)
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "a.png").write_bytes(b"fine")
    (drop / "a.png.points").write_bytes(b"gcps")
    (drop / "b.png").write_bytes(b"bad")
    (drop / "b.png.aux.xml").write_bytes(b"<xml/>")
    build = StandIn()
    async with running(Service(config, build=build, pool_factory=FakePool)) as service:
        await until(lambda: service.state.done + service.state.failed == 2)
    assert build.built == ["a.png"]
    assert listing(drop / "done") == ["a.png", "a.png.points"]
    assert listing(drop / "failed") == ["b.png", "b.png.aux.xml", "b.png.error.json"]
    assert listing(drop / "processing") == []


async def test_http_serves_outputs_and_the_graph_api_and_follows_reloads(tmp_path):
    config = make_config(tmp_path, http={"bind": "127.0.0.1:0"})
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "a.png").write_bytes(b"fine")
    service = Service(config, build=StandIn(), pool_factory=FakePool)

    def get(path: str) -> tuple[int, bytes]:
        host, port = service.http_address
        try:
            with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=5) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    async with running(service):
        await until(lambda: service.state.done == 1)
        code, body = await anyio.to_thread.run_sync(get, "/outputs/w/a.out")
        assert (code, body) == (200, b"fine")
        code, body = await anyio.to_thread.run_sync(get, "/graph/")
        assert code == 200 and json.loads(body) == []
        code, body = await anyio.to_thread.run_sync(get, "/openapi.json")
        assert code == 200 and "/graph/{name}/cover" in json.loads(body)["paths"]
        text = config.path.read_text()
        config.path.write_text(text + f'[[watch]]\nname = "two"\nfolder = "{tmp_path / "d2"}"\n'
                               f'output = "{tmp_path / "o2"}"\n')
        os.kill(os.getpid(), signal.SIGHUP)
        await until(lambda: service.metrics.reloads.labels("ok")._value.get() == 1)
        code, body = await anyio.to_thread.run_sync(get, "/openapi.json")
        paths = json.loads(body)["paths"]
        assert "/graph/w/{name}/cover" in paths and "/graph/two/{name}/cover" in paths
        assert (await anyio.to_thread.run_sync(get, "/outputs/w/a.out"))[0] == 200


async def test_on_success_delete_removes_the_input_and_its_sidecars(tmp_path):
    config = make_config(tmp_path, watches=[
        {"name": "w", "folder": str(tmp_path / "drop"), "output": str(tmp_path / "out"),
         "settle_time": 0.05, "min_age": 0, "on_success": "delete"}])
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "a.png").write_bytes(b"fine")
    (drop / "a.png.points").write_bytes(b"gcps")
    async with running(Service(config, build=StandIn(), pool_factory=FakePool)) as service:
        await until(lambda: service.state.done == 1)
    assert listing(drop / "done") == [] and listing(drop / "processing") == []
    assert [n for n in listing(drop) if "a.png" in n] == []
    assert (tmp_path / "out" / "a.out").exists()


async def test_a_drop_folder_removed_and_made_again_is_served_again(tmp_path):
    import shutil

    config = make_config(tmp_path, rescan_interval=0.3)
    drop = tmp_path / "drop"
    async with running(Service(config, build=StandIn(), pool_factory=FakePool)) as service:
        shutil.rmtree(drop)
        await anyio.sleep(0.5)
        drop.mkdir()
        (drop / "a.png").write_bytes(b"fine")
        await until(lambda: service.state.done == 1)
    assert listing(drop / "done") == ["a.png"]


@pytest.mark.parametrize("intruder", ["file", "link"])
async def test_something_in_the_place_of_the_services_folders_is_moved_aside(tmp_path, intruder):
    # A file where processing/ was stopped the service (exit 2, every start); a link
    # to a folder elsewhere made it move inputs there, and at a start build and
    # publish what it found there.
    config = make_config(tmp_path)
    drop, outside = tmp_path / "drop", tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(b"fine")
    build = StandIn()

    def intrude(name: str) -> None:
        folder = drop / name
        if folder.is_dir() and not folder.is_symlink():
            folder.rename(tmp_path / f"old-{name}")
        if intruder == "file":
            folder.write_bytes(b"bad")  # not an image (to the stand-in build)
        else:
            folder.symlink_to(outside, target_is_directory=True)

    drop.mkdir()
    intrude("processing")  # before the start: the start's recovery lists processing/
    async with running(Service(config, build=build, pool_factory=FakePool)) as service:
        for n, name in enumerate(("done", "failed", "processing"), 1):
            intrude(name)
            (drop / f"good-{name}.png").write_bytes(b"fine")
            (drop / f"bad-{name}.png").write_bytes(b"bad")
            await until(lambda: (service.state.done, service.state.failed) == (n, n + 1 + n),
                        what=name)
    assert listing(outside) == ["secret.png"]  # nothing moved in, nothing taken out
    assert sorted(build.built) == ["good-done.png", "good-failed.png", "good-processing.png"]
    for name in ("done", "failed", "processing"):
        assert (drop / name).is_dir() and not (drop / name).is_symlink()
    # What was in the way was renamed in the drop folder (processing-1, ...), or taken
    # as it was if the watcher saw it first, and refused like any input that is not
    # an image or is a link: it is in failed/ with its reason.
    report = json.loads((drop / "failed" / "processing-1.error.json").read_text())
    assert report["kind"] == ("symlink" if intruder == "link" else "bad-input")


async def test_inputs_with_names_up_to_255_bytes_are_done_or_failed(tmp_path):
    # A sidecar's name (NAME.points) or the report's (NAME.error.json) of such an input
    # is too long to exist: the lookups failed with ENAMETOOLONG, and the job stayed
    # in processing/, redone and failing again at every start.
    config = make_config(tmp_path)
    drop = tmp_path / "drop"
    drop.mkdir()
    good, bad = "G" * 246 + ".png", "B" * 251 + ".png"
    (drop / good).write_bytes(b"fine")
    (drop / bad).write_bytes(b"bad")
    async with running(Service(config, build=StandIn(), pool_factory=FakePool)) as service:
        await until(lambda: (service.state.done, service.state.failed) == (1, 1))
        (drop / bad).write_bytes(b"bad")  # again: its name in failed/ is taken now
        await until(lambda: service.state.failed == 2)
    assert listing(drop / "done") == [good] and listing(drop / "processing") == []
    failed = listing(drop / "failed")
    names = [n for n in failed if not n.endswith(".error.json")]
    reports = [n for n in failed if n.endswith(".error.json")]
    assert len(names) == 2 and bad in names and all(len(n.encode()) <= 255 for n in names)
    assert len(reports) == 2 and all(len(n.encode()) <= 255 for n in reports)
    inputs = sorted(json.loads((drop / "failed" / r).read_text())["input"] for r in reports)
    assert inputs == [bad, bad]
    assert replay(config.state_dir / "journal.jsonl") == {}


def test_every_kind_of_failure_a_user_can_cause_has_advice_that_is_not_a_bug_report():
    from pyramidd.errors import NoSpace, PyramiddError
    from pyramidd.graph.errors import GraphDataError
    from pyramidd.service.failure import from_exception
    from pyramidd.warp.gcps import GCPError

    class PluginOwn(PyramiddError):
        kind = "camera-raw-locked"

    for exc in (GCPError("a.points: too few"), GraphDataError("n1: no position"),
                NoSpace("disk full while writing x"), PluginOwn("locked")):
        failure = from_exception(exc)
        assert failure.kind == exc.kind
        advice = failure.report(folder="/d", failed="/d/failed")["what_to_do"]
        assert "bug" not in advice and "/d/failed" in advice, (exc.kind, advice)
    assert "bug" in from_exception(KeyError("x")).report()["what_to_do"]


async def test_a_watch_whose_folder_cannot_be_made_waits_and_the_others_are_served(tmp_path):
    # A reload adding a watch whose folder cannot be created (a file in the way of
    # its parent) ended the whole service from its watcher.
    config = make_config(tmp_path, rescan_interval=0.2)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    build = StandIn()
    async with running(Service(config, build=build, pool_factory=FakePool)) as service:
        good = config.path.read_text()
        config.path.write_text(good + f'[[watch]]\nname = "second"\nfolder = "{blocker / "drop2"}"\n'
                               f'output = "{tmp_path / "out2"}"\nsettle_time = 0.05\nmin_age = 0\n')
        assert await service.reload()
        (tmp_path / "drop" / "a.png").write_bytes(b"fine")
        await until(lambda: service.state.done == 1)  # the first watch goes on
        blocker.unlink()  # the folder can be made now: the second watch comes up
        await until(lambda: (blocker / "drop2").is_dir(), what="the second watch")
        (blocker / "drop2" / "b.png").write_bytes(b"fine")
        await until(lambda: service.state.done == 2)
    assert (tmp_path / "out2" / "b.out").exists()


@pytest.mark.parametrize("fails", ["journal", "move"])
async def test_a_claim_that_fails_is_retried_and_the_service_lives_on(tmp_path, monkeypatch, fails):
    # journal: a full disk under the state folder, the claim's journal entry failed and
    # the exception took the whole service down (exit 1, and again at every restart).
    # move: processing/ made read-only under the running service, the rename's
    # PermissionError ended the service and left the claim's intent open.
    from pyramidd.service import claim as claim_module
    from pyramidd.service import service as service_module
    from pyramidd.service.journal import Journal, JournalError

    monkeypatch.setattr(service_module, "CLAIM_RETRY", 0.1)
    owner, attr, error = {
        "journal": (Journal, "claim", JournalError("cannot write the job journal: No space")),
        "move": (claim_module, "claim", PermissionError(13, "Permission denied")),
    }[fails]
    real, left = getattr(owner, attr), [3]

    def failing(*args):
        if left[0]:
            left[0] -= 1
            raise error
        return real(*args)

    monkeypatch.setattr(owner, attr, failing)
    config = make_config(tmp_path)
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "a.png").write_bytes(b"fine")
    async with running(Service(config, build=StandIn(), pool_factory=FakePool)) as service:
        await until(lambda: service.state.done == 1)
    assert left == [0] and listing(drop / "done") == ["a.png"]
    assert replay(config.state_dir / "journal.jsonl") == {}  # no intent left open
