"""The job journal: an append-only file of JSON lines in the state folder, fsync'd per record.

Every step of a job that moves a file or makes an output is written here *before*
it is taken (``claim``) or *after* it took effect (``claimed``, ``built``,
``closed``), so a start after kill -9 can tell, with the folders, how far each job
got (see :mod:`.recovery`). A line cut short by a crash is ignored: the step it
described is then judged from the folders alone.

The methods block (fsync): async callers run them through ``anyio.to_thread``.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

#: States of a job, in order. ``claiming``: about to rename the input into
#: ``processing/``; ``claimed``: it is there, no attempt finished; ``built``: the
#: output is in place, the input not yet moved; ``failed``: given up, input not yet
#: moved. A job whose input reached ``done/`` or ``failed/`` is closed and forgotten.
STATES = ("claiming", "claimed", "built", "failed")


class JournalError(OSError):
    """An entry could not be written (a full or failing disk under the state folder);
    the journal and its open jobs are as they were before it."""


def new_job_id() -> str:
    """A short id that sorts by creation time."""
    return f"{int(time.time() * 1000):x}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class JobRecord:
    """What the journal knows of one open job."""

    id: str
    watch: str
    name: str  # the name in the drop folder, and in processing/
    output: str  # the pyramid's name in the output folder
    state: str = "claiming"
    attempts: int = 0  # attempts started, including ones a service crash cut short
    error: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None
    created: float = field(default_factory=time.time)


def apply(jobs: dict[str, JobRecord], entry: dict[str, Any]) -> None:
    """Apply one journal entry to the open jobs (pure; unknown ids and ops are skipped)."""
    op, job_id = entry.get("op"), entry.get("id")
    if op == "claim":
        fields = {k: v for k, v in entry.items() if k in JobRecord.__dataclass_fields__}
        jobs[job_id] = JobRecord(**fields)
        return
    job = jobs.get(job_id)
    if job is None:
        return
    if op == "claimed":
        jobs[job_id] = replace(job, state="claimed")
    elif op == "attempt":
        jobs[job_id] = replace(job, state="claimed", attempts=entry["n"])
    elif op == "built":
        jobs[job_id] = replace(job, state="built", summary=entry.get("summary"))
    elif op == "failed":
        jobs[job_id] = replace(job, state="failed", error=entry.get("error"))
    elif op == "closed":
        del jobs[job_id]


def replay(path: Path) -> dict[str, JobRecord]:
    """The open jobs recorded at ``path`` (none if it does not exist)."""
    jobs: dict[str, JobRecord] = {}
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return jobs
    for line in raw.split(b"\n"):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:  # torn by a crash mid-write: the folders tell the rest
            continue
        if isinstance(entry, dict):
            try:
                apply(jobs, entry)
            except (TypeError, KeyError):
                continue
    return jobs


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Journal:
    """The journal file of one service; one writer at a time (a process-wide lock).

    It keeps the open jobs in memory as it writes, and rewrites itself with only those
    every ``compact_every`` entries, so a service that runs for years keeps a journal
    the size of its open jobs, not of its history.
    """

    def __init__(self, path: Path, compact_every: int = 10_000) -> None:
        self.path = path
        self.compact_every = compact_every
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._jobs: dict[str, JobRecord] = {}
        self._appended = 0

    def open(self) -> dict[str, JobRecord]:
        """Replay the journal, rewrite it with only the open jobs, and open it for appending."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        jobs = replay(self.path)
        with self._lock:
            self._jobs = dict(jobs)
            self._rewrite()
        return jobs

    def open_jobs(self) -> dict[str, JobRecord]:
        """The jobs the journal holds open now."""
        with self._lock:
            return dict(self._jobs)

    def _rewrite(self) -> None:
        """Replace the file with one ``claim`` line per open job (atomically). Lock held."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as f:
            f.writelines(_line({"op": "claim", **asdict(job)}) for job in self._jobs.values())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        _fsync_dir(self.path.parent)
        if self._fd is not None:
            os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        self._appended = 0

    def write(self, op: str, job_id: str, **fields: Any) -> None:
        """Append one entry and fsync it before returning."""
        self._append({"op": op, "id": job_id, **fields})

    def claim(self, job: JobRecord) -> None:
        """Record the intent to claim ``job`` (before the rename)."""
        self._append({"op": "claim", **asdict(job)})

    def _append(self, entry: dict[str, Any]) -> None:
        data = _line(entry)
        with self._lock:
            if self._fd is None:
                raise RuntimeError("journal is not open")
            end = os.lseek(self._fd, 0, os.SEEK_END)
            try:
                written = 0
                while written < len(data):  # a full disk can take part of a line
                    written += os.write(self._fd, data[written:])
                os.fsync(self._fd)
            except OSError as exc:
                # Cut a part-written line off: the next line appended would join it,
                # and replay would drop both. Not applied: the step did not happen.
                try:
                    os.ftruncate(self._fd, end)
                except OSError:
                    pass
                raise JournalError(
                    f"cannot write the job journal {self.path}: {exc.strerror or exc}") from exc
            apply(self._jobs, entry)
            self._appended += 1
            if self._appended >= self.compact_every:
                self._rewrite()

    def close(self) -> None:
        """Close the file (entries are already on disk)."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def _line(entry: dict[str, Any]) -> bytes:
    # ensure_ascii keeps names with undecodable bytes (lone surrogates) encodable.
    return (json.dumps(entry, ensure_ascii=True, separators=(",", ":")) + "\n").encode("ascii")
