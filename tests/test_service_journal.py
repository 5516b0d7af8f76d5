"""Journal and recovery: every state a crash can leave maps to one right action."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

from pyramidd.service.config import parse_config
from pyramidd.service.journal import JobRecord, Journal, replay
from pyramidd.service.recovery import adopt, decide, scan


def job(id: str = "1", state: str = "claimed", name: str = "a.png", watch: str = "w") -> JobRecord:
    return JobRecord(id=id, watch=watch, name=name, output="a", state=state)


def test_journal_round_trip_and_compaction(tmp_path):
    j = Journal(tmp_path / "journal.jsonl")
    assert j.open() == {}
    j.claim(job("1", "claiming"))
    j.write("claimed", "1")
    j.write("attempt", "1", n=1)
    j.claim(job("2", "claiming", name="b.png"))
    j.write("claimed", "2")
    j.write("built", "2", summary={"tiles": 3})
    j.claim(job("3", "claiming", name="c.png"))
    j.write("claimed", "3")
    j.write("failed", "3", error={"kind": "bad-input", "error": "x"})
    j.claim(job("4", "claiming", name=__import__("os").fsdecode(b"\xff\n.png")))
    j.write("closed", "4")
    j.close()
    jobs = replay(tmp_path / "journal.jsonl")
    assert {k: (v.state, v.attempts) for k, v in jobs.items()} == {
        "1": ("claimed", 1), "2": ("built", 0), "3": ("failed", 0)}
    assert jobs["2"].summary == {"tiles": 3} and jobs["3"].error["kind"] == "bad-input"
    j2 = Journal(tmp_path / "journal.jsonl")
    assert j2.open() == jobs
    lines = (tmp_path / "journal.jsonl").read_text().splitlines()
    assert len(lines) == 3  # compacted: one line per open job
    j2.close()


def test_a_torn_last_line_is_ignored(tmp_path):
    path = tmp_path / "journal.jsonl"
    j = Journal(path)
    j.open()
    j.claim(job("1", "claiming"))
    j.write("claimed", "1")
    j.close()
    with open(path, "ab") as f:
        f.write(b'{"op":"attempt","id":"1","n"')
    assert replay(path)["1"].state == "claimed"
    assert replay(path)["1"].attempts == 0


def config(tmp_path: Path):
    return parse_config({"state_dir": str(tmp_path / "s"), "watch": [
        {"name": "w", "folder": str(tmp_path / "d"), "output": str(tmp_path / "o")}]})


def test_decide_every_state():
    cfg = parse_config({"watch": [{"name": "w", "folder": "/d", "output": "/o"}]})
    jobs = {
        "1": job("1", "claiming", name="in-drop"),
        "2": job("2", "claiming", name="in-processing"),
        "3": job("3", "claimed", name="redo"),
        "4": job("4", "built", name="built"),
        "5": job("5", "failed", name="failed"),
        "6": job("6", "claimed", name="gone"),
        "7": job("7", "claimed", watch="removed"),
    }
    where = {("w", "in-drop"): "drop", ("w", "in-processing"): "processing",
             ("w", "redo"): "processing", ("w", "built"): None, ("w", "failed"): "processing",
             ("w", "gone"): None}
    actions = {d.job.id: d.action for d in decide(jobs, cfg, where)}
    assert actions == {"1": "release", "2": "redo", "3": "redo", "4": "finish-done",
                       "5": "finish-failed", "6": "release", "7": "keep"}


def test_a_refused_claim_does_not_steal_the_older_jobs_file():
    cfg = parse_config({"watch": [{"name": "w", "folder": "/d", "output": "/o"}]})
    jobs = {"1": job("1", "claimed"), "2": job("2", "claiming")}
    actions = {d.job.id: d.action for d in decide(jobs, cfg, {("w", "a.png"): "processing"})}
    assert actions == {"1": "redo", "2": "release"}


def test_files_in_processing_without_a_journal_are_adopted(tmp_path):
    cfg = config(tmp_path)
    w = cfg.watches[0]
    w.processing.mkdir(parents=True)
    (w.processing / "known.png").write_bytes(b"x")
    (w.processing / "lost.png").write_bytes(b"x")
    adopted = adopt(cfg, {"1": job("1", name="known.png")})
    assert [(a.name, a.state, a.output) for a in adopted] == [("lost.png", "claimed", "lost")]
    decisions = scan({"1": job("1", name="known.png")}, cfg)
    assert sorted((d.job.name, d.action) for d in decisions) == [
        ("known.png", "redo"), ("lost.png", "redo")]


def test_journal_lines_are_ascii_json(tmp_path):
    j = Journal(tmp_path / "j")
    j.open()
    j.claim(job("1", name=__import__("os").fsdecode(b"\xe9t\xe9.png")))
    j.close()
    entry = json.loads((tmp_path / "j").read_bytes().decode("ascii"))
    assert replace(job("1", name=entry["name"])).name.encode("utf-8", "surrogateescape") == b"\xe9t\xe9.png"


def test_the_journal_compacts_itself_while_it_runs(tmp_path):
    path = tmp_path / "journal.jsonl"
    j = Journal(path, compact_every=50)
    j.open()
    j.claim(job("open", "claiming", name="keep.png"))
    for i in range(200):
        j.claim(job(f"j{i}", "claiming"))
        j.write("claimed", f"j{i}")
        j.write("closed", f"j{i}")
    assert len(path.read_text().splitlines()) < 60
    assert set(replay(path)) == {"open"} and set(j.open_jobs()) == {"open"}
    j.close()


def test_recovery_finishes_a_claim_cut_short(tmp_path):
    cfg = parse_config({"state_dir": str(tmp_path / "s"), "watch": [
        {"name": "w", "folder": str(tmp_path / "d"), "output": str(tmp_path / "o"),
         "done_marker": True}]})
    w = cfg.watches[0]
    w.processing.mkdir(parents=True)
    (w.processing / "a.png").write_bytes(b"x")
    (w.folder / "a.png.points").write_bytes(b"g")  # the crash came before its move
    (w.folder / "a.png.done").touch()  # and before the marker's removal
    decisions = scan({"1": job("1", name="a.png")}, cfg)
    assert [(d.job.name, d.action) for d in decisions] == [("a.png", "redo")]
    assert sorted(os.listdir(w.processing)) == ["a.png", "a.png.points"]
    assert not (w.folder / "a.png.done").exists()


def test_staging_cut_off_before_its_lock_is_removed_when_its_process_is_dead(tmp_path):
    import subprocess
    import sys

    from pyramidd.service.recovery import sweep_leftovers

    cfg = config(tmp_path)
    out = cfg.watches[0].output
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    unborn = out / f".a.dzi.pyramidd-staging-{dead.pid}-abcd1234"
    (unborn / "new").mkdir(parents=True)
    mine = out / f".b.dzi.pyramidd-staging-{os.getpid()}-abcd1234"
    mine.mkdir(parents=True)  # a live process's build being born: left alone
    removed = sweep_leftovers(cfg)
    assert str(unborn) in removed["staging"] and not unborn.exists() and mine.exists()


def test_a_full_disk_leaves_no_part_written_line_and_no_half_applied_step(tmp_path, monkeypatch):
    # A full disk took part of a line: the next line appended joined it and replay
    # dropped both, while the running service went on as if the step was written.
    import errno

    import pytest

    from pyramidd.service import journal as journal_module
    from pyramidd.service.journal import JournalError

    j = Journal(tmp_path / "journal.jsonl")
    j.open()
    j.claim(job("1", "claiming"))
    real_write = os.write
    calls = []

    def full(fd, data):
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, data[:20])  # part of the line, as a full disk does
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(journal_module.os, "write", full)
    with pytest.raises(JournalError, match="cannot write the job journal .*No space left"):
        j.write("claimed", "1")
    monkeypatch.setattr(journal_module.os, "write", real_write)
    assert j.open_jobs()["1"].state == "claiming"  # the step was not taken
    j.write("built", "1", summary={"tiles": 1})  # and the journal goes on whole
    j.close()
    lines = (tmp_path / "journal.jsonl").read_text().splitlines()
    assert [json.loads(line)["op"] for line in lines] == ["claim", "built"]
    assert replay(tmp_path / "journal.jsonl")["1"].state == "built"
