"""Running the real service process from tests: config, start, wait, signals, status.

:class:`ServiceProcess` starts ``pyramidd run`` in its own session with a fake
``NOTIFY_SOCKET``, so a test sees exactly what systemd would (READY=1, STATUS=,
STOPPING=1, ...) and can wait for readiness without sleeping. Every process it
started is killed, with its render workers, by :meth:`ServiceProcess.close`.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def pyramidd_command() -> list[str]:
    """The installed ``pyramidd`` script beside this Python, else ``python -m pyramidd``."""
    script = shutil.which("pyramidd", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "pyramidd"]


def toml_value(value: Any) -> str:
    """A Python value as TOML (strings, numbers, booleans, lists and inline tables of those)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def write_config(path: Path, watches: list[dict[str, Any]], **settings: Any) -> Path:
    """Write a service config: ``settings`` at the top, ``http``/``log`` as dicts, one table per watch."""
    lines = []
    tables = {k: settings.pop(k) for k in ("http", "log") if k in settings}
    for key, value in settings.items():
        lines.append(f"{key} = {toml_value(value)}")
    for name, table in tables.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in table.items()]
    for watch in watches:
        lines.append("[[watch]]")
        lines += [f"{k} = {toml_value(v)}" for k, v in watch.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def wait_until(predicate: Callable[[], Any], timeout: float, what: str = "condition",
               interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something true; :class:`TimeoutError` naming ``what``."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class NotifyListener:
    """A fake systemd notify socket that records every message."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.messages: list[dict[str, str]] = []

    def poll(self) -> list[dict[str, str]]:
        """Read what arrived; return all messages so far."""
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return self.messages
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            self.messages.append(fields)

    def seen(self, key: str, value: str | None = None) -> bool:
        """Whether a message with ``key`` (equal to ``value``, if given) arrived."""
        return any(key in m and (value is None or m[key] == value) for m in self.poll())

    def close(self) -> None:
        """Close and remove the socket."""
        self.sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class ServiceProcess:
    """One ``pyramidd run`` process under test, with its config in ``root``."""

    def __init__(self, root: Path, config: Path, env: dict[str, str] | None = None) -> None:
        self.root = root
        self.config = config
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.notify: NotifyListener | None = None
        self.log_path = root / "service.log"
        self.runs = 0
        self.pids: list[int] = []

    def start(self, env: dict[str, str] | None = None, ready_timeout: float = 30.0,
              wait_ready: bool = True) -> ServiceProcess:
        """Start the service (again) and wait for READY=1."""
        self.runs += 1
        if self.notify is not None:
            self.notify.close()
        self.notify = NotifyListener(self.root / f"notify-{secrets.token_hex(3)}.sock")
        # A test run under systemd must not pass the runner's own watchdog on.
        inherited = {k: v for k, v in os.environ.items()
                     if k not in ("WATCHDOG_USEC", "WATCHDOG_PID", "PYRAMIDD_CRASH_AT")}
        full_env = {**inherited, **self.env, **(env or {}),
                    "NOTIFY_SOCKET": str(self.notify.path), "PYTHONUNBUFFERED": "1"}
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [*pyramidd_command(), "run", "--config", str(self.config)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=full_env,
            start_new_session=True, cwd=self.root)
        log.close()
        self.pids.append(self.proc.pid)
        if wait_ready:
            self.wait_ready(ready_timeout)
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait for READY=1 (or fail with the log if the process exits)."""
        assert self.notify is not None

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"service exited with {self.proc.returncode}:\n{self.log_text()}")
            return self.notify.seen("READY", "1")  # type: ignore[union-attr]

        wait_until(ready, timeout, "READY=1")

    def log_text(self) -> str:
        """Everything the service printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def events(self) -> list[dict[str, Any]]:
        """The service's JSON log events so far."""
        out = []
        for line in self.log_text().splitlines():
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict):
                    out.append(event)
        return out

    def http(self, path: str = "/status") -> tuple[int, bytes]:
        """GET ``path`` from the status server: (status code, body)."""
        state_dir = self.state_dir()
        address = json.loads((state_dir / "http.json").read_text())
        url = f"http://{address['host']}:{address['port']}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def status(self) -> dict[str, Any]:
        """The service's ``/status``."""
        return json.loads(self.http("/status")[1])

    def state_dir(self) -> Path:
        """The config's state folder."""
        from .config import load_config

        return load_config(self.config).state_dir

    def signal(self, signum: int) -> None:
        """Send a signal to the service process."""
        assert self.proc is not None
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 30.0) -> int:
        """Wait for the process to exit; its exit code."""
        assert self.proc is not None
        return self.proc.wait(timeout)

    def kill9(self) -> None:
        """``kill -9`` the service process (its workers notice and exit on their own)."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def wait_group_gone(self, timeout: float = 15.0) -> None:
        """Wait until no process of the last run's session (render workers) is left."""
        assert self.proc is not None
        pgid = self.proc.pid

        def gone() -> bool:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return True
            return False

        wait_until(gone, timeout, "the service's render workers to exit")

    def close(self) -> None:
        """Kill whatever is left of every run (service and workers)."""
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
        if self.notify is not None:
            self.notify.close()


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Fail the enclosed block with :class:`TimeoutError` after ``seconds`` (main thread only)."""

    def expired(signum: int, frame: Any) -> None:
        raise TimeoutError(f"test exceeded its {seconds}s deadline")

    old = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
