"""Settle rules: a file is taken only when its size and mtime held still long enough."""

from __future__ import annotations

from pathlib import Path

from pyramidd.service.config import WatchConfig
from pyramidd.service.settle import Entry, is_ignored, plan, unchanged

W = WatchConfig(name="w", folder=Path("/d"), output=Path("/o"), settle_time=2.0, min_age=1.0)


def f(name: str, size: int = 10, mtime: float = 100.0, **kw: bool) -> Entry:
    return Entry(name, size, mtime, kw.get("regular", True), kw.get("symlink", False))


def test_a_file_settles_after_settle_time_and_min_age():
    p = plan([f("a.png")], {}, W, now=0.0, wall=1000.0)
    assert p.ready == [] and p.wake_in == 2.0
    p = plan([f("a.png")], p.seen, W, now=1.9, wall=1001.9)
    assert p.ready == [] and abs(p.wake_in - 0.1) < 1e-9
    p = plan([f("a.png")], p.seen, W, now=2.0, wall=1002.0)
    assert [e.name for e in p.ready] == ["a.png"] and p.wake_in is None


def test_a_growing_file_restarts_its_clock():
    p = plan([f("a.png", size=1)], {}, W, now=0.0, wall=1000.0)
    p = plan([f("a.png", size=2)], p.seen, W, now=1.5, wall=1001.5)
    p = plan([f("a.png", size=2)], p.seen, W, now=3.0, wall=1003.0)
    assert p.ready == []
    p = plan([f("a.png", size=2)], p.seen, W, now=3.5, wall=1003.5)
    assert len(p.ready) == 1


def test_a_touched_file_restarts_its_clock():
    p = plan([f("a.png", mtime=100.0)], {}, W, now=0.0, wall=1000.0)
    p = plan([f("a.png", mtime=101.0)], p.seen, W, now=2.5, wall=1002.5)
    assert p.ready == []


def test_min_age_holds_back_files_with_future_mtimes():
    p = plan([f("a.png", mtime=1000.0)], {}, W, now=0.0, wall=1000.0)
    p = plan([f("a.png", mtime=1000.0)], p.seen, W, now=5.0, wall=1000.5)
    assert p.ready == [] and abs(p.wake_in - 0.5) < 1e-9


def test_an_mtime_in_the_future_counts_as_the_time_seen_unchanged():
    # touch -d 2099: it waited until 2099, and nothing said why
    p = plan([f("a.png", mtime=4e9)], {}, W, now=0.0, wall=1000.0)
    assert p.ready == [] and p.wake_in == 2.0
    p = plan([f("a.png", mtime=4e9)], p.seen, W, now=2.0, wall=1002.0)
    assert [e.name for e in p.ready] == ["a.png"]


def test_ignored_names_dirs_and_patterns():
    for name in (".hidden.png", "a.png.part", "a.tmp", "a.png~", "a.png.done", "x.crdownload"):
        assert is_ignored(name), name
    assert not is_ignored("a.png") and not is_ignored("a..png")
    w = WatchConfig(name="w", folder=Path("/d"), output=Path("/o"), settle_time=0, min_age=0,
                    patterns=("*.png",))
    entries = [f(".a.png"), f("b.png.part"), f("c.jpg"), f("done", regular=False),
               f("link.png", regular=False, symlink=True), f("ok.png")]
    assert sorted(e.name for e in plan(entries, {}, w, 0.0, 1e9).ready) == ["link.png", "ok.png"]


def test_done_markers_make_a_file_ready_at_once_and_only_then():
    w = WatchConfig(name="w", folder=Path("/d"), output=Path("/o"), settle_time=60, min_age=60,
                    done_marker=True)
    assert plan([f("a.png")], {}, w, 0.0, 100.0).ready == []
    p = plan([f("a.png"), f("a.png.done", size=0)], {}, w, 0.0, 100.0)
    assert [e.name for e in p.ready] == ["a.png"]
    assert plan([f("b.png.done")], {}, w, 0.0, 100.0).ready == []


def test_forgets_files_that_left():
    p = plan([f("a.png")], {}, W, 0.0, 1000.0)
    assert plan([], p.seen, W, 1.0, 1001.0).seen == {}


def test_unchanged():
    assert unchanged(f("a"), f("a"))
    assert not unchanged(f("a"), f("a", size=11))
    assert not unchanged(f("a"), f("a", regular=False, symlink=True))


def test_sidecars_are_not_inputs_and_hold_their_input_until_they_settle():
    w = WatchConfig(name="w", folder=Path("/d"), output=Path("/o"), settle_time=1.0, min_age=0)
    p = plan([f("a.tif"), f("a.tif.points", size=5), f("b.aux.xml")], {}, w, 0.0, 1000.0)
    p = plan([f("a.tif"), f("a.tif.points", size=9), f("b.aux.xml")], p.seen, w, 1.5, 1001.5)
    assert p.ready == []  # the sidecar grew: its image waits
    p = plan([f("a.tif"), f("a.tif.points", size=9), f("b.aux.xml")], p.seen, w, 2.6, 1002.6)
    assert [e.name for e in p.ready] == ["a.tif"]
