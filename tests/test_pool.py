"""The worker pool on its own: tasks, pinned workers, crashes, initializers."""

from __future__ import annotations

import os
import signal

import anyio
import pytest

from pyramidd import errors, worker
from pyramidd.pool import WorkerPool

MARK = "PYRAMIDD_TEST_POOL_MARK"


def set_mark(value: str) -> None:
    os.environ[MARK] = value


def get_mark() -> str | None:
    return os.environ.get(MARK)


def fail_with(exc: BaseException) -> None:
    raise exc


def test_runs_tasks_on_any_or_a_given_worker():
    async def main():
        async with WorkerPool(2) as pool:
            pids = set(pool.pids())
            assert len(pids) == 2
            assert await pool.run(worker.ping) in pids
            assert await pool.run(worker.ping, worker=1) == pool.pids()[1]

    anyio.run(main)


def test_errors_come_back_user_errors_as_they_are_others_with_a_traceback(tests_importable):
    async def main():
        async with WorkerPool(1) as pool:
            with pytest.raises(errors.InputError, match="bad file"):
                await pool.run(fail_with, errors.InputError("bad file"))
            with pytest.raises(RuntimeError, match="ZeroDivisionError"):
                await pool.run(fail_with, ZeroDivisionError("boom"))
            assert await pool.run(worker.ping)  # the worker is still fine

    anyio.run(main)


def test_initializer_runs_in_every_worker_including_replacements(tests_importable):
    async def main():
        async with WorkerPool(2, initializer=(set_mark, ("ready",))) as pool:
            assert [await pool.run(get_mark, worker=i) for i in range(2)] == ["ready", "ready"]
            os.kill(pool.pids()[0], signal.SIGKILL)
            with anyio.fail_after(30):
                while pool.restarts == 0:
                    await anyio.sleep(0.05)
            assert await pool.run(get_mark, worker=0) == "ready"

    anyio.run(main)


def test_a_task_the_worker_cannot_load_fails_alone():
    """Without the tests folder on its path the worker cannot import this module."""

    async def main():
        async with WorkerPool(1) as pool:
            with pytest.raises(RuntimeError, match="No module named 'test_pool'"):
                await pool.run(get_mark)
            assert pool.restarts == 0
            assert await pool.run(worker.ping)

    anyio.run(main)


def test_a_dying_worker_fails_its_task_and_is_replaced():
    async def main():
        async with WorkerPool(1) as pool:
            with pytest.raises(errors.WorkerCrashed, match="killed by signal 9"):
                await pool.run(os.kill, pool.pids()[0], signal.SIGKILL)
            assert pool.restarts == 1
            assert await pool.run(worker.ping) == pool.pids()[0]

    anyio.run(main)


def test_cancelled_task_returns_its_worker_when_it_answers():
    async def main():
        async with WorkerPool(1) as pool:
            with anyio.move_on_after(0.2):
                await pool.run(__import__("time").sleep, 1.0)
            with anyio.fail_after(10):
                assert await pool.run(worker.ping)  # waits for the abandoned task, then runs

    anyio.run(main)


def test_tasks_queue_behind_starting_workers_when_entry_does_not_wait():
    async def ping_both():
        async with WorkerPool(2, wait_started=False) as pool:
            pids = []

            async def one(i: int) -> None:
                pids.append(await pool.run(worker.ping, worker=i))

            async with anyio.create_task_group() as tg:
                for i in range(2):
                    tg.start_soon(one, i)
            assert sorted(pids) == sorted(pool.pids())

    anyio.run(ping_both)


@pytest.mark.parametrize("wait_started", [True, False])
def test_a_worker_that_cannot_start_fails_entry_or_the_tasks_sent_to_it(monkeypatch, wait_started):
    # /bin/false takes the worker's command line and exits 1 before saying "ready".
    monkeypatch.setattr("pyramidd.launch.sys.executable", "/bin/false")

    async def main():
        with anyio.fail_after(20):
            with pytest.raises(errors.PluginError, match="exited during start"):
                async with WorkerPool(1, wait_started=wait_started) as pool:
                    await pool.run(worker.ping)
            # nothing hangs: a second task on the dead worker fails the same way
            if not wait_started:
                async with WorkerPool(1, wait_started=False) as pool:
                    for _ in range(2):
                        with pytest.raises(errors.PluginError, match="exited during start"):
                            await pool.run(worker.ping)

    anyio.run(main)


def parent_of(pid: int) -> int:
    return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])


def live(pid: int) -> bool:
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_larger_pool_forks_its_workers_from_one_server():
    async def main():
        async with WorkerPool(3) as pool:
            pids = pool.pids()
            servers = {parent_of(pid) for pid in pids}
            assert len(servers) == 1 and servers != {os.getpid()}
            (server,) = servers
            assert parent_of(server) == os.getpid()
            assert sorted([await pool.run(worker.ping, worker=i) for i in range(3)]) == sorted(pids)
            return [server, *pids]

    started = anyio.run(main)
    assert not any(live(pid) for pid in started)  # the pool took the server and workers along


def test_a_forked_worker_that_dies_fails_its_task_and_is_forked_again():
    async def main():
        async with WorkerPool(2) as pool:
            server = parent_of(pool.pids()[1])
            with pytest.raises(errors.WorkerCrashed, match="killed by signal 9"):
                await pool.run(os.kill, pool.pids()[1], signal.SIGKILL, worker=1)
            assert pool.restarts == 1
            with anyio.fail_after(20):
                assert await pool.run(worker.ping, worker=1) == pool.pids()[1]
            assert parent_of(pool.pids()[1]) == server

    anyio.run(main)


def test_when_the_fork_server_dies_its_workers_are_replaced_by_subprocesses(tests_importable):
    async def main():
        async with WorkerPool(2) as pool:
            server = parent_of(pool.pids()[0])
            with pytest.raises(errors.WorkerCrashed, match="killed by signal 9"):
                # The task outlives the kill: its worker dies with the server.
                await pool.run(fail_after_killing, server, worker=0)
            with anyio.fail_after(20):
                pids = [await pool.run(worker.ping, worker=i) for i in range(2)]
            assert pids == pool.pids() and {parent_of(pid) for pid in pids} == {os.getpid()}
            assert pool.restarts == 2
            assert not os.path.exists(f"/proc/{server}")  # reaped, not a zombie

    anyio.run(main)


@pytest.mark.parametrize("wait_started", [True, False])
def test_a_pool_whose_fork_server_dies_at_once_starts_plain_workers(monkeypatch, wait_started):
    # A server that exits before serving: the workers asked of it are started the plain way.
    monkeypatch.setattr("pyramidd.launch.SERVER_CODE", "import sys; sys.exit(3)")

    async def main():
        with anyio.fail_after(20):
            async with WorkerPool(2, wait_started=wait_started) as pool:
                pids = [await pool.run(worker.ping, worker=i) for i in range(2)]
                assert {parent_of(pid) for pid in pids} == {os.getpid()}

    anyio.run(main)


def fail_after_killing(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    __import__("time").sleep(30)


def test_a_task_that_cannot_be_pickled_fails_without_holding_a_worker():
    async def main():
        async with WorkerPool(1) as pool:
            with pytest.raises(Exception, match="pickle|lambda"):
                await pool.run(lambda: None)
            with anyio.fail_after(20):  # the only worker is free again
                assert await pool.run(worker.ping) == pool.pids()[0]

    anyio.run(main)


def read_env(name: str) -> str | None:
    return os.environ.get(name)


@pytest.mark.parametrize("size", [1, 2])
def test_workers_run_blas_on_one_thread_unless_told_otherwise(monkeypatch, tests_importable, size):
    async def main():
        async with WorkerPool(size) as pool:
            return await pool.run(read_env, "OPENBLAS_NUM_THREADS", worker=size - 1)

    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    assert anyio.run(main) == "1"
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")
    assert anyio.run(main) == "3"


#: Modules of formats a DZI build from a TIFF does not use (nor Pillow: RGB JPEG tiles
#: go to libjpeg-turbo through imagecodecs, and no plugin imports it before it needs it).
UNUSED_BY_A_TIFF_DZI = ("pyramidd.warp.source", "pyramidd.sources.pillow",
                        "pyramidd.sources.npy", "pyramidd.sinks.tms", "pyramidd.sinks.xyz",
                        "pyramidd.viewer.listing", "pyramidd.graph.sources", "PIL.Image")


def imported(names: tuple[str, ...]) -> list[str]:
    import sys

    return [name for name in names if name in sys.modules]


def test_a_worker_imports_only_the_formats_its_builds_use(tmp_path, tests_importable):
    """Every worker loads every plugin, the built-in formats included, but imports a
    format's module only when a task unpickles its source or sink: a worker starts
    in about half the time it took when it registered every format at start."""
    from pyramidd import engine
    from pyramidd.options import BuildOptions
    from pyramidd.testing import gradient, write_image

    source = write_image(tmp_path / "in.tif", gradient(600, 400, 3))

    async def main():
        async with WorkerPool(2) as forked:  # a fork server's workers import no more
            for i in range(2):
                assert await forked.run(imported, UNUSED_BY_A_TIFF_DZI, worker=i) == []
        async with WorkerPool(1) as pool:
            used = ("pyramidd.sources.tiff", "pyramidd.sinks.dzi")
            assert await pool.run(imported, UNUSED_BY_A_TIFF_DZI + used) == []
            await engine.build(source, tmp_path / "out" / "x", BuildOptions(), pool=pool)
            assert await pool.run(imported, UNUSED_BY_A_TIFF_DZI + used) == list(used)

    anyio.run(main)
    assert (tmp_path / "out" / "x.dzi").is_file()


def test_the_fork_server_imports_plugins_and_the_first_tiles_modules_once(tmp_path):
    """What every worker would import at its start and first tile is imported by the
    server before it forks (the TIFF source's tifffile too); disabled plugins are not
    imported there either, nor importlib.metadata to find the others."""
    import subprocess
    import sys

    (tmp_path / "loud_plugin.py").write_text("raise ImportError('not for this test')\n")
    code = (
        "import sys; from pyramidd import forkserver, plugins\n"
        "forkserver.preload(('loud_plugin',))\n"
        "print(('loud_plugin',) in plugins._loaded, "
        "all(m in sys.modules for m in ('pyramidd.resamplers', 'cv2', 'imagecodecs._jpeg8',"
        " 'tifffile')), 'importlib.metadata' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "PYRAMIDD_PLUGINS": "loud_plugin"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, timeout=60)
    assert result.stdout.split() == ["True", "True", "False"], result.stderr


def test_a_plugin_that_fails_to_import_is_reported_by_the_fork_servers_workers(
        tmp_path, monkeypatch):
    (tmp_path / "broken_plugin.py").write_text("raise ImportError('half-installed')\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.setenv("PYRAMIDD_PLUGINS", "broken_plugin")

    async def main():
        with anyio.fail_after(30):
            with pytest.raises(errors.PluginError, match="broken_plugin.*half-installed"):
                async with WorkerPool(2):
                    pass
            async with WorkerPool(2, disabled_plugins=["broken_plugin"]) as pool:
                assert len(set([await pool.run(worker.ping, worker=i) for i in range(2)])) == 2

    anyio.run(main)


@pytest.mark.parametrize("size", [1, 2])
def test_a_pool_adopts_a_fork_server_started_ahead(size):
    """As ``pyramidd build`` starts the server before importing the engine, whatever
    the number of workers."""
    from pyramidd import launch

    process, sock = launch.start_fork_server()

    async def main():
        async with WorkerPool(size, fork_server=(process, sock)) as pool:
            pids = pool.pids()
            assert len(pids) == size and {parent_of(pid) for pid in pids} == {process.pid}
            assert sorted([await pool.run(worker.ping, worker=i) for i in range(size)]) == sorted(pids)
            return pids

    pids = anyio.run(main)
    assert not any(live(pid) for pid in [process.pid, *pids])
