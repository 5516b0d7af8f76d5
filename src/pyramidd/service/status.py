"""What the service is doing, as plain data: the body of ``/status`` and ``pyramidd status``.

The service updates one :class:`State`; :meth:`State.snapshot` turns it into JSON-ready
data; :func:`render` prints that for people; :func:`fetch` asks a running service
(the address is in ``STATE_DIR/http.json``, so port 0 works).
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__

#: Failures kept for ``/status``.
RECENT_FAILURES = 20


@dataclass
class JobProgress:
    """A job being built, as ``/status`` shows it."""

    id: str
    watch: str
    name: str
    output: str
    attempt: int = 0
    state: str = "starting"  # starting, building, retrying, finishing
    done: int = 0
    total: int = 0
    started: float = field(default_factory=time.time)
    #: What the source reported during this attempt, by message, with how often
    #: (``{"warp fallback: narrower blocks": 2}``).
    notices: dict[str, int] = field(default_factory=dict)
    #: The source's counters summed over the workers, as of the last notice.
    source_counters: dict[str, Any] = field(default_factory=dict)


@dataclass
class State:
    """The live state of one service process."""

    started: float = field(default_factory=time.time)
    ready: bool = False
    stopping: bool = False
    running: dict[str, JobProgress] = field(default_factory=dict)
    waiting: int = 0
    capacity: int = 0
    done: int = 0
    failed: int = 0
    recent_failures: deque[dict[str, Any]] = field(
        default_factory=lambda: deque(maxlen=RECENT_FAILURES))
    watches: list[dict[str, Any]] = field(default_factory=list)
    #: Monotonic time of the last job start, progress or end (for the watchdog).
    last_activity: float = field(default_factory=time.monotonic)
    worker_restarts: int = 0
    config_path: str | None = None

    def touch(self) -> None:
        """Note that the pipeline did something."""
        self.last_activity = time.monotonic()

    @property
    def busy(self) -> bool:
        """Jobs run or files wait."""
        return bool(self.running) or self.waiting > 0

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready status."""
        return {
            "service": "pyramidd",
            "version": __version__,
            "pid": os.getpid(),
            "started": self.started,
            "uptime": round(time.time() - self.started, 3),
            "state": "stopping" if self.stopping else "ready" if self.ready else "starting",
            "config": self.config_path,
            "queue": {"waiting": self.waiting, "capacity": self.capacity},
            "jobs": [_readable_all(asdict(j)) for j in self.running.values()],
            "totals": {"done": self.done, "failed": self.failed,
                       "worker_restarts": self.worker_restarts},
            "recent_failures": [_readable_all(f) for f in self.recent_failures],
            "watches": self.watches,
        }

    def line(self) -> str:
        """One line for systemd's ``STATUS=``."""
        parts = [f"{self.waiting} waiting", f"{len(self.running)} running"]
        for job in list(self.running.values())[:2]:
            pct = f" {100 * job.done // job.total}%" if job.total else ""
            parts.append(f"{job.watch}/{readable(job.name)!r}{pct}")
        parts.append(f"{self.done} done, {self.failed} failed")
        return ", ".join(parts)


def readable(name: str) -> str:
    """A file name as text: bytes that are not UTF-8 shown as ``\\xff`` escapes.

    Names reach Python with such bytes as lone surrogates, which no JSON encoder
    writes as UTF-8.
    """
    try:
        raw = name.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate no file system produced: show it replaced
        raw = name.encode("utf-8", "replace")
    return raw.decode("utf-8", "backslashreplace")


def _readable_all(data: dict[str, Any]) -> dict[str, Any]:
    # Error messages quote file names too.
    return {k: readable(v) if isinstance(v, str) else v for k, v in data.items()}


def render(status: dict[str, Any]) -> str:
    """The status for people, as ``pyramidd status`` prints it."""
    out = [
        (f"pyramidd {status['version']} pid {status['pid']}: {status['state']}, "
         f"up {_duration(status['uptime'])}"),
        (f"queue: {status['queue']['waiting']} waiting (of {status['queue']['capacity']}), "
         f"{len(status['jobs'])} running; {status['totals']['done']} done, "
         f"{status['totals']['failed']} failed, {status['totals']['worker_restarts']} worker restarts"),
    ]
    for w in status["watches"]:
        out.append(f"watch {w['name']}: {w['folder']} -> {w['output']}")
    for j in status["jobs"]:
        pct = f"{100 * j['done'] // j['total']}% ({j['done']}/{j['total']} tiles)" if j["total"] else j["state"]
        notes = "".join(f"; {m}" + (f" x{n}" if n > 1 else "")
                        for m, n in (j.get("notices") or {}).items())
        out.append(f"  running {j['watch']}/{j['name']!r}: {pct}, attempt {j['attempt']}{notes}")
    if status["recent_failures"]:
        out.append("recent failures:")
        for f in status["recent_failures"]:
            out.append(f"  {f['watch']}/{f['input']!r}: {f['kind']}: {f['error']}")
    return "\n".join(out)


def _duration(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def address_file(state_dir: Path) -> Path:
    """Where a running service writes the address its HTTP server listens on."""
    return state_dir / "http.json"


def fetch(state_dir: Path, path: str = "/status", timeout: float = 5.0) -> dict[str, Any]:
    """Ask the service whose state folder is ``state_dir``; :class:`ConnectionError` if none answers."""
    try:
        address = json.loads(address_file(state_dir).read_text())
    except (OSError, ValueError):
        raise ConnectionError(
            f"no running service found: {address_file(state_dir)} is missing "
            "(is pyramidd running with this config, and is [http] enabled?)") from None
    host = f"[{address['host']}]" if ":" in address["host"] else address["host"]
    url = f"http://{host}:{address['port']}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ConnectionError(f"the service at {url} does not answer: {exc}") from None
