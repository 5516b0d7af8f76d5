"""Atomic output: staging directory, commit order, replace, abort, errors, stale sweep."""

from __future__ import annotations

import errno
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pyramidd.errors import OutputError
from pyramidd.sinks import staging as st
from pyramidd.sinks.staging import (
    NAME_MAX,
    STAGING_MARK,
    Staging,
    check_name,
    staging_dir_name,
    sweep_stale,
    write_file,
)


def stage_dzi_like(parent: Path, tag: str, replace: bool = False) -> Staging:
    """A started two-entry output (data folder, then descriptor) holding ``tag``."""
    s = Staging(parent, ("out_files", "out.dzi"), replace=replace)
    s.check()
    s.start()
    (s.staged("out_files")).mkdir()
    write_file(s.staged("out_files") / "tile", tag.encode())
    write_file(s.staged("out.dzi"), tag.encode(), sync=True)
    return s


def visible(parent: Path) -> tuple[str | None, str | None]:
    """(descriptor contents, data contents) as a reader sees them now."""
    desc = parent / "out.dzi"
    data = parent / "out_files" / "tile"
    return (
        desc.read_text() if desc.exists() else None,
        data.read_text() if data.exists() else None,
    )


def leftovers(parent: Path) -> list[str]:
    return [n for n in os.listdir(parent) if STAGING_MARK in n]


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "../x", "x\0y", f".a{STAGING_MARK}1"])
def test_names_that_would_escape_are_refused(name: str) -> None:
    with pytest.raises(OutputError):
        check_name(name)


def test_long_names() -> None:
    with pytest.raises(OutputError, match="longer"):
        check_name("x" * 256)
    assert check_name("é" * 127) == "é" * 127
    label = "é" * 200  # 400 bytes: the label is cut, on a character boundary
    name = staging_dir_name(label, "123-abcd")
    assert len(os.fsencode(name)) <= NAME_MAX
    assert name.startswith(".é") and name.endswith(STAGING_MARK + "123-abcd")
    assert staging_dir_name("out", "1-2") == f".out{STAGING_MARK}1-2"


def test_staging_is_hidden_next_to_the_output(tmp_path: Path) -> None:
    s = Staging(tmp_path / "sub", ("pyr",))
    assert s.path.parent == tmp_path / "sub"
    assert s.path.name.startswith(".pyr" + STAGING_MARK)
    assert s.staged("pyr") == s.new / "pyr" and s.target("pyr") == tmp_path / "sub" / "pyr"
    assert Staging(tmp_path, ("pyr",)).token != s.token


# --------------------------------------------------------------------------- life cycle


def test_nothing_at_output_before_commit_then_all_of_it(tmp_path: Path) -> None:
    s = stage_dzi_like(tmp_path, "new")
    assert sorted(os.listdir(tmp_path)) == [s.path.name]
    assert visible(tmp_path) == (None, None)
    s.commit()
    assert sorted(os.listdir(tmp_path)) == ["out.dzi", "out_files"]
    assert visible(tmp_path) == ("new", "new")


def test_descriptor_is_moved_in_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[str] = []
    real = st.rename_noreplace

    def spy(src: Path, dst: Path) -> None:
        order.append(Path(dst).name)
        real(src, dst)

    monkeypatch.setattr(st, "rename_noreplace", spy)
    stage_dzi_like(tmp_path, "new").commit()
    assert order == ["out_files", "out.dzi"]


def test_commit_requires_every_entry(tmp_path: Path) -> None:
    s = Staging(tmp_path, ("out_files", "out.dzi"))
    s.start()
    s.staged("out_files").mkdir()
    with pytest.raises(OutputError, match="out.dzi"):
        s.commit()
    s.abort()


def test_start_makes_missing_parents(tmp_path: Path) -> None:
    s = Staging(tmp_path / "a" / "b", ("pyr",))
    s.check()
    s.start()
    s.staged("pyr").mkdir()
    s.commit()
    assert (tmp_path / "a" / "b" / "pyr").is_dir()
    assert leftovers(tmp_path / "a" / "b") == []


def test_abort_removes_everything(tmp_path: Path) -> None:
    s = stage_dzi_like(tmp_path, "new")
    s.abort()
    assert os.listdir(tmp_path) == []
    s.abort()  # twice is harmless


def test_existing_output_is_refused_without_replace(tmp_path: Path) -> None:
    (tmp_path / "out.dzi").write_text("old")
    s = Staging(tmp_path, ("out_files", "out.dzi"))
    with pytest.raises(OutputError, match="already exists.*--replace"):
        s.check()
    assert os.listdir(tmp_path) == ["out.dzi"]


def test_output_appearing_during_the_build_is_not_clobbered(tmp_path: Path) -> None:
    s = stage_dzi_like(tmp_path, "new")
    (tmp_path / "out_files").mkdir()
    (tmp_path / "out_files" / "tile").write_text("someone else")
    with pytest.raises(OutputError, match="appeared"):
        s.commit()
    assert visible(tmp_path) == (None, "someone else")
    s.abort()
    assert leftovers(tmp_path) == []


def test_parent_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    with pytest.raises(OutputError, match="not a folder"):
        Staging(tmp_path / "f" / "x", ("pyr",)).check()


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_folder_is_refused(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    with pytest.raises(OutputError, match="permission denied"):
        Staging(ro, ("pyr",)).check()


# --------------------------------------------------------------------------- replace


@pytest.mark.parametrize("can_exchange", [True, False])
def test_replace_never_shows_half_old_half_new(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, can_exchange: bool
) -> None:
    stage_dzi_like(tmp_path, "old").commit()
    states = [visible(tmp_path)]
    real_rename, real_noreplace, real_exchange = os.rename, st.rename_noreplace, st.exchange
    exchanged: list[str] = []

    def rename(src: Path, dst: Path) -> None:
        real_rename(src, dst)
        states.append(visible(tmp_path))

    def noreplace(src: Path, dst: Path) -> None:
        real_noreplace(src, dst)
        states.append(visible(tmp_path))

    def exchange(a: Path, b: Path) -> bool:
        done = can_exchange and real_exchange(a, b)
        if done:
            exchanged.append(Path(b).name)
            states.append(visible(tmp_path))
        return done

    s = stage_dzi_like(tmp_path, "new", replace=True)
    monkeypatch.setattr(st.os, "rename", rename)
    monkeypatch.setattr(st, "rename_noreplace", noreplace)
    monkeypatch.setattr(st, "exchange", exchange)
    s.commit()
    states.append(visible(tmp_path))
    assert states[0] == ("old", "old") and states[-1] == ("new", "new")
    assert (None, "new") in states or (None, "old") in states  # the descriptor went first
    if can_exchange and st._renameat2 is not None:
        assert exchanged == ["out_files"]
    for desc, data in states:
        # A descriptor is only ever seen with its own data.
        assert desc is None or desc == data, states
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("can_exchange", [True, False])
def test_replace_one_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, can_exchange: bool) -> None:
    if not can_exchange:
        monkeypatch.setattr(st, "exchange", lambda a, b: False)
    old = tmp_path / "pyr"
    old.mkdir()
    (old / "stale-tile").write_text("old")
    s = Staging(tmp_path, ("pyr",), replace=True)
    s.check()
    s.start()
    s.staged("pyr").mkdir()
    (s.staged("pyr") / "tile").write_text("new")
    s.commit()
    assert os.listdir(old) == ["tile"]
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("can_exchange", [True, False])
def test_failed_commit_rolls_back_to_the_old_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, can_exchange: bool
) -> None:
    stage_dzi_like(tmp_path, "old").commit()
    if not can_exchange:
        monkeypatch.setattr(st, "exchange", lambda a, b: False)
    s = stage_dzi_like(tmp_path, "new", replace=True)

    def broken(src: Path, dst: Path) -> None:
        raise OSError(errno.EIO, "I/O error", str(dst))

    monkeypatch.setattr(st, "rename_noreplace", broken)  # the new descriptor cannot go in
    with pytest.raises(OutputError, match="moving into place"):
        s.commit()
    assert visible(tmp_path) == ("old", "old")
    s.abort()
    assert leftovers(tmp_path) == [] and visible(tmp_path) == ("old", "old")


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "code, message",
    [
        (errno.ENOSPC, "disk full while writing"),
        (errno.EDQUOT, "disk full while writing"),
        (errno.EACCES, "permission denied while writing"),
        (errno.EROFS, "permission denied while writing"),
        (errno.EIO, "error while writing"),
    ],
)
def test_write_errors_become_output_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, message: str
) -> None:
    def write(fd: int, data: bytes) -> int:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(st.os, "write", write)
    with pytest.raises(OutputError, match=message) as info:
        write_file(tmp_path / "t.png", b"x")
    assert "t.png" in str(info.value)
    pickle.loads(pickle.dumps(info.value))  # it crosses back from a worker


def test_write_into_removed_staging_says_so(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="folder is gone"):
        write_file(tmp_path / "gone" / "t.png", b"x")


def test_write_file_writes_everything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.write
    monkeypatch.setattr(st.os, "write", lambda fd, data: real(fd, bytes(data[:3])))  # short writes
    assert write_file(tmp_path / "f", b"0123456789", sync=True) == 10
    assert (tmp_path / "f").read_bytes() == b"0123456789"


@pytest.mark.parametrize("syncfs", ["missing", "failing"])
def test_sync_falls_back_to_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, syncfs: str) -> None:
    monkeypatch.setattr(st, "_syncfs", None if syncfs == "missing" else (lambda fd: -1))
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(st.os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a").write_text("a")
    (tmp_path / "b").write_text("b")
    st.sync_tree(tmp_path)
    assert len(synced) == 4  # two files, two folders


def test_sync_uses_one_syncfs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if st._syncfs is None:
        pytest.skip("this system has no syncfs(2)")
    monkeypatch.setattr(st.os, "fsync", lambda fd: pytest.fail("fsync called"))
    for i in range(20):
        (tmp_path / str(i)).write_text("x")
    st.sync_tree(tmp_path)


# --------------------------------------------------------------------------- workers and sweep


def test_pickled_staging_does_not_carry_the_lock(tmp_path: Path) -> None:
    s = Staging(tmp_path, ("pyr",))
    s.start()
    copy = pickle.loads(pickle.dumps(s))
    assert copy.path == s.path and copy._lock_fd is None and s._lock_fd is not None
    copy.abort()  # a worker's abort does not close the coordinator's lock
    assert s._lock_fd is not None
    s.abort()
    assert s._lock_fd is None


def dead_pid() -> int:
    """The pid of a process that has exited."""
    p = subprocess.Popen([sys.executable, "-c", ""])
    p.wait()
    return p.pid


def test_sweep_removes_only_dead_builds(tmp_path: Path) -> None:
    live = Staging(tmp_path, ("live",))
    live.start()
    dead = Staging(tmp_path, ("dead",), token=f"{dead_pid()}-c90cab8e")
    dead.start()
    dead._release()  # its process died: the lock file stays, unlocked
    young = tmp_path / f".young{STAGING_MARK}1-a"
    young.mkdir()  # no lock yet: a build being born
    old = tmp_path / f".old{STAGING_MARK}2-b"
    old.mkdir()
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    other = tmp_path / ".not-ours"
    other.mkdir()
    (tmp_path / f".file{STAGING_MARK}3-c").write_text("")  # not a directory

    removed = sweep_stale(tmp_path)
    assert sorted(p.name for p in removed) == sorted([dead.path.name, old.name])
    assert live.path.exists() and young.exists() and other.exists()
    live.abort()
    assert sweep_stale(tmp_path / "missing") == []


def test_start_sweeps_dead_builds_beside_it(tmp_path: Path) -> None:
    dead = Staging(tmp_path, ("pyr",), token=f"{dead_pid()}-f4839eb2")
    dead.start()
    dead._release()
    s = Staging(tmp_path, ("pyr",))
    s.start()
    assert not dead.path.exists() and s.path.exists()
    s.abort()


def test_sweep_respects_a_lock_held_by_another_process(tmp_path: Path) -> None:
    s = Staging(tmp_path, ("pyr",), token=f"{dead_pid()}-e9a2627d")
    s.start()
    s._release()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR);"
            " fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); sys.stdin.read()",
            str(s.path / "lock"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        assert sweep_stale(tmp_path) == []
    finally:
        holder.kill()
        holder.wait(timeout=10)
    assert sweep_stale(tmp_path) == [s.path]


def test_concurrent_starts_in_one_folder_never_disturb_each_other(tmp_path):
    """Each start sweeps the folder; a sibling build being born must survive it."""
    import threading

    failures: list[BaseException] = []

    def builder(i: int) -> None:
        for r in range(150):
            st = Staging(tmp_path, (f"n{i}_{r}_files", f"n{i}_{r}.dzi"))
            try:
                st.start()
                (st.staged(f"n{i}_{r}_files")).mkdir()
                (st.staged(f"n{i}_{r}.dzi")).write_text("x")
                st.commit()
            except BaseException as exc:  # collected: the assertion below shows them
                failures.append(exc)
                st.abort()

    threads = [threading.Thread(target=builder, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert len(list(tmp_path.glob("*.dzi"))) == 600
