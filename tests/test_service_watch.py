"""Watching a folder: armed before ready, settled files queued once, lost events covered by rescans."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest

from pyramidd.service import watch as watch_module
from pyramidd.service.config import WatchConfig
from pyramidd.service.testing import deadline
from pyramidd.service.watch import FolderWatcher

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _deadline():
    with deadline(30):
        yield


def make_watch(tmp_path: Path, **kw) -> WatchConfig:
    return WatchConfig(name="w", folder=tmp_path / "drop", output=tmp_path / "out",
                       settle_time=kw.pop("settle_time", 0.1), min_age=0.0, **kw)


async def collect(watcher: FolderWatcher, receive, names: set[str], timeout: float) -> list[str]:
    got: list[str] = []
    with anyio.fail_after(timeout):
        while set(got) != names:
            got.append((await receive.receive()).entry.name)
    return got


async def test_events_queue_settled_files_once(tmp_path):
    send, receive = anyio.create_memory_object_stream(10)
    w = make_watch(tmp_path)
    watcher = FolderWatcher(w, send, set(), rescan_interval=60)
    async with anyio.create_task_group() as tg:
        await tg.start(watcher.run)
        assert w.processing.is_dir() and w.failed.is_dir() and w.output.is_dir()
        assert [n for n in os.listdir(w.folder) if n.startswith(".pyramidd-armed")] == []
        (w.folder / "a.png").write_bytes(b"x")
        (w.folder / ".b.png").write_bytes(b"x")
        got = await collect(watcher, receive, {"a.png"}, 5)
        await anyio.sleep(0.5)  # more looks at the folder must not queue it again
        assert got == ["a.png"] and receive.statistics().current_buffer_used == 0
        tg.cancel_scope.cancel()


async def test_lost_events_are_covered_by_the_periodic_rescan(tmp_path, monkeypatch):
    async def deaf_awatch(folder, **kw):
        # Reports the arming probe, then never another event, as when inotify overflows
        # or the folder is on a network filesystem.
        while True:
            for name in os.listdir(folder):
                if name.startswith(".pyramidd-armed"):
                    yield {(1, str(Path(folder) / name))}
                    await anyio.sleep_forever()
            await anyio.sleep(0.01)

    monkeypatch.setattr(watch_module, "awatch", deaf_awatch)
    send, receive = anyio.create_memory_object_stream(10)
    w = make_watch(tmp_path, settle_time=0.0)
    watcher = FolderWatcher(w, send, set(), rescan_interval=0.5)
    async with anyio.create_task_group() as tg:
        await tg.start(watcher.run)
        await anyio.sleep(0.1)
        (w.folder / "late.png").write_bytes(b"x")
        assert await collect(watcher, receive, {"late.png"}, 3) == ["late.png"]
        tg.cancel_scope.cancel()


async def test_a_full_queue_holds_files_in_the_folder(tmp_path):
    send, receive = anyio.create_memory_object_stream(2)
    w = make_watch(tmp_path)
    pending: set[tuple[str, str]] = set()
    watcher = FolderWatcher(w, send, pending, rescan_interval=0.2)
    async with anyio.create_task_group() as tg:
        await tg.start(watcher.run)
        for i in range(10):
            (w.folder / f"f{i}.png").write_bytes(b"x")
        with anyio.fail_after(5):
            while receive.statistics().current_buffer_used < 2:
                await anyio.sleep(0.02)
        await anyio.sleep(0.5)
        assert receive.statistics().current_buffer_used == 2
        assert len(pending) == 3  # two queued, one waiting to be sent: nothing more in memory
        names = [(await receive.receive()).entry.name for _ in range(10)]
        assert sorted(names) == [f"f{i}.png" for i in range(10)]
        tg.cancel_scope.cancel()
