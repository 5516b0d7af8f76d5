"""The systemd notify protocol: ``KEY=VALUE`` lines in one datagram to ``$NOTIFY_SOCKET``.

A few lines over a Unix datagram socket, so no library is needed. Without
``NOTIFY_SOCKET`` (not started by systemd) every call does nothing. Sending a
datagram on a Unix socket does not wait on the network; the socket is non-blocking
so a stalled receiver cannot block the event loop either (the message is dropped,
as systemd would after its own queue filled).
"""

from __future__ import annotations

import os
import socket
import time


def _address(value: str) -> str | bytes:
    # "@name" is an abstract socket: its name starts with a NUL byte.
    return "\0" + value[1:] if value.startswith("@") else value


class Notifier:
    """Sends state changes to the service manager."""

    def __init__(self, socket_path: str | None = None, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.address = socket_path if socket_path is not None else env.get("NOTIFY_SOCKET")
        self.watchdog_usec = _watchdog_usec(env)
        self._sock: socket.socket | None = None
        if self.address:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.setblocking(False)

    @property
    def enabled(self) -> bool:
        """Whether a service manager listens."""
        return self._sock is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between watchdog pings (half of ``WatchdogSec``), or ``None`` if off."""
        return self.watchdog_usec / 2e6 if self.watchdog_usec else None

    def send(self, **fields: str | int) -> bool:
        """Send ``KEY=VALUE`` lines (keys upper-cased); ``False`` if nothing was sent."""
        if self._sock is None or not self.address:
            return False
        text = "\n".join(f"{k.upper()}={v}" for k, v in fields.items())
        try:
            self._sock.sendto(text.encode("utf-8", "replace"), _address(self.address))
        except (BlockingIOError, OSError):
            return False
        return True

    def ready(self, status: str) -> bool:
        """The service is up: watchers are armed and it takes files."""
        return self.send(ready=1, status=status, mainpid=os.getpid())

    def status(self, status: str) -> bool:
        """A one-line status for ``systemctl status``."""
        return self.send(status=status)

    def reloading(self) -> bool:
        """A reload started; ``ready()`` ends it."""
        return self.send(reloading=1, monotonic_usec=time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000)

    def stopping(self) -> bool:
        """A stop started."""
        return self.send(stopping=1, status="stopping")

    def watchdog(self) -> bool:
        """The service is alive and its pipeline moves."""
        return self.send(watchdog=1)

    def close(self) -> None:
        """Close the socket."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _watchdog_usec(env: os._Environ[str] | dict[str, str]) -> int | None:
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):  # meant for another process (we were exec'd by one)
        return None
    return usec if usec > 0 else None


def pipeline_moves(now: float, busy: bool, last_activity: float, period: float) -> bool:
    """Whether to send a watchdog ping: the pipeline is idle, or it did something lately.

    ``busy``: jobs run or files wait for a job; ``last_activity``: when a job last
    started, progressed or ended (monotonic seconds). A busy pipeline that did nothing
    for a whole watchdog period is hung; the pings stop, systemd restarts the service,
    and its journal redoes the job.
    """
    return not busy or now - last_activity <= period
