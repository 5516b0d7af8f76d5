"""The engine end to end: real worker processes, a test plugin's lossless sink."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import anyio
import numpy as np
import pytest

import reference as ref
from pyramidd import errors, shm
from pyramidd.engine import build
from pyramidd.grid import Grid
from pyramidd.options import BuildOptions
from pyramidd.pool import WorkerPool
from pyramidd.resamplers import Box, Nearest, Smooth

RESAMPLERS = {"box": Box(), "nearest": Nearest(), "smooth": Smooth()}


def write_input(folder: Path, img: np.ndarray, name: str = "in") -> Path:
    path = folder / f"{name}.testnpy"
    with open(path, "wb") as f:
        np.save(f, img)
    return path


def expected_tiles(img, resampler, grid, flip_y):
    if not flip_y:
        return ref.tiles(img, resampler, grid)
    # Rows counted from the bottom: the reference of the flipped image, tiles flipped back.
    return {k: v[::-1] for k, v in ref.tiles(img[::-1], resampler, grid).items()}


def run_builds(jobs, workers):
    """Run several builds on one pool; return their summaries. Each build's progress
    must count every tile exactly once, never past the total."""

    async def main():
        summaries = []
        async with WorkerPool(workers) as pool:
            for i, o, opts in jobs:
                seen: list[tuple[int, int]] = []
                summary = await build(i, o, opts, pool=pool,
                                      progress=lambda d, t: seen.append((d, t)))
                assert seen and seen[-1] == (summary.tiles, summary.tiles), i
                assert [d for d, _ in seen] == sorted(d for d, _ in seen), i
                summaries.append(summary)
        return summaries

    return anyio.run(main)


CASES = [
    # w, h, tile, overlap, resampler, depth, flip
    (1, 1, 254, 1, "box", "onepixel", False),
    (1, 777, 254, 1, "box", "onepixel", False),
    (255, 253, 254, 1, "smooth", "onepixel", False),
    (4097, 2049, 510, 2, "box", "onepixel", False),
    (1031, 509, 256, 0, "nearest", "onetile", False),
    (1031, 509, 256, 0, "box", "onetile", True),
    (257, 1999, 64, 3, "smooth", "onetile", True),
]


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_engine_agrees_with_reference(tmp_path, rawplugin, workers):
    rng = np.random.default_rng(workers)
    jobs, expect = [], []
    for i, (w, h, t, o, r, depth, flip) in enumerate(CASES):
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        src = write_input(tmp_path, img, f"in{i}")
        opts = BuildOptions(layout="raw", tile_size=t, overlap=o, resampler=r,
                            extra={"depth": depth, "flip_y": flip})
        jobs.append((src, tmp_path / f"out{i}", opts))
        grid = Grid(w, h, t, o, depth)
        expect.append((grid, expected_tiles(img, RESAMPLERS[r], grid, flip)))
    summaries = run_builds(jobs, workers)
    for (src, out, _), (grid, want), summary in zip(jobs, expect, summaries):
        got = rawplugin.read_tiles(out)
        assert set(got) == set(want), src
        for key in want:
            np.testing.assert_array_equal(got[key], want[key], err_msg=f"{src} {key}")
        assert summary.tiles == len(want) == grid.tile_count()


def test_nothing_is_read_back_from_the_output(tmp_path, rawplugin, monkeypatch):
    opens = tmp_path / "opens.log"
    monkeypatch.setenv("PYRAMIDD_PLUGINS", "rawplugin,auditplugin")
    monkeypatch.setenv("PYRAMIDD_TEST_OPENS", str(opens))
    # tiles are written in the staging folder (.out.staging) and renamed to out at the end
    monkeypatch.setenv("PYRAMIDD_TEST_WATCH", str(tmp_path / ".out"))
    from pyramidd import plugins

    plugins._loaded.clear()
    img = np.random.default_rng(0).integers(0, 256, (3000, 2000, 3), dtype=np.uint8)
    src = write_input(tmp_path, img)
    opts = BuildOptions(layout="raw", tile_size=128, overlap=1)
    run_builds([(src, tmp_path / "out", opts)], 2)
    assert (tmp_path / "out" / "done").exists()
    assert not opens.exists() or opens.read_text() == ""


def test_audit_hook_sees_reads(tmp_path, rawplugin, monkeypatch):
    """The readback check above would pass vacuously if the hook saw nothing."""
    opens = tmp_path / "opens.log"
    monkeypatch.setenv("PYRAMIDD_PLUGINS", "rawplugin,auditplugin")
    monkeypatch.setenv("PYRAMIDD_TEST_OPENS", str(opens))
    monkeypatch.setenv("PYRAMIDD_TEST_WATCH", str(tmp_path))
    from pyramidd import plugins

    plugins._loaded.clear()
    img = np.zeros((300, 300, 1), np.uint8)
    src = write_input(tmp_path, img)
    run_builds([(src, tmp_path / "out", BuildOptions(layout="raw"))], 1)
    assert str(src) in opens.read_text()  # workers open the input for reading


def _leftover_segments():
    return {p.name for p in Path("/dev/shm").glob(f"{shm.PREFIX}{os.getpid()}_*")}


def test_killed_worker_fails_the_build_cleanly_and_the_pool_recovers(tmp_path, rawplugin):
    img = np.random.default_rng(1).integers(0, 256, (4000, 4000, 3), dtype=np.uint8)
    src = write_input(tmp_path, img)
    before = _leftover_segments()

    async def main():
        async with WorkerPool(2) as pool:
            opts = BuildOptions(layout="raw", tile_size=64, overlap=1)

            async def killer():
                await anyio.sleep(0.5)
                os.kill(pool.pids()[0], signal.SIGKILL)

            async with anyio.create_task_group() as tg:
                tg.start_soon(killer)
                with pytest.raises(errors.WorkerCrashed):
                    await build(src, tmp_path / "out", opts, pool=pool)
            assert pool.restarts == 1
            # the same pool builds the next input
            small = write_input(tmp_path, img[:500, :700], "small")
            summary = await build(small, tmp_path / "out2", opts, pool=pool)
            return summary

    summary = anyio.run(main)
    assert not (tmp_path / "out").exists()
    assert not any(p.name.startswith(".out") for p in tmp_path.iterdir())
    assert summary.tiles == Grid(700, 500, 64, 1).tile_count()
    assert _leftover_segments() == before


def test_cancelled_build_leaves_nothing(tmp_path, rawplugin):
    img = np.zeros((6000, 6000, 1), np.uint8)
    src = write_input(tmp_path, img)

    async def main():
        async with WorkerPool(2) as pool:
            with anyio.move_on_after(0.5):
                await build(src, tmp_path / "out", BuildOptions(layout="raw", tile_size=64), pool=pool)

    anyio.run(main)
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == [src.name]


def test_user_errors_from_workers_arrive_as_they_are(tmp_path, rawplugin):
    img = np.zeros((100, 100, 3), np.uint8)
    src = write_input(tmp_path, img)
    with pytest.raises(errors.OptionError, match="no resampler called 'bogus'"):
        run_builds([(src, tmp_path / "o", BuildOptions(layout="raw", resampler="bogus"))], 1)
    with pytest.raises(errors.UnsupportedInput):
        other = tmp_path / "x.unknown"
        other.write_bytes(b"not an image")
        run_builds([(other, tmp_path / "o", BuildOptions(layout="raw"))], 1)


def test_staged_tiles_are_written_back_once_the_first_worker_runs_out_of_subtrees(
        tmp_path, monkeypatch):
    """The commit's syncfs gets a head start: one early write-back, from the coordinator,
    after some tiles are staged and before the last ones are."""
    from pyramidd.sinks import staging
    from pyramidd.testing import gradient, write_image

    src = write_image(tmp_path / "in.tif", gradient(2000, 1500, 3))
    staged_then: list[int] = []
    original = staging.Staging.write_back

    def spy(self: staging.Staging) -> None:
        staged_then.append(sum(1 for _ in self.path.rglob("*.jpg")))
        original(self)

    monkeypatch.setattr(staging.Staging, "write_back", spy)

    async def main():
        async with WorkerPool(2) as pool:
            return await build(src, tmp_path / "out" / "x", BuildOptions(), pool=pool)

    summary = anyio.run(main)
    assert len(staged_then) == 1 and 0 < staged_then[0] < summary.tiles
    assert len(list((tmp_path / "out").rglob("*.jpg"))) == summary.tiles
