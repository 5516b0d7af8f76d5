"""The progress bar of ``pyramidd build`` and the numbers it shows.

Shown only on a terminal; the rate and ETA are over the whole run so far, which is
steady enough for tile builds.

A progress callback is called with ``(done, total)``. One that also has a
``notice(message, counters)`` method (:class:`NoticeReceiver`) hears what the
source's readers report while the build runs, e.g. that a warp fell back to
narrower blocks; :func:`pass_notice` is how the engine hands it on.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Mapping, Protocol, TextIO, runtime_checkable


@runtime_checkable
class NoticeReceiver(Protocol):
    """A progress callback that also takes a source's notices during a build."""

    def __call__(self, done: int, total: int) -> None:
        """Tiles written so far and tiles in all."""
        ...

    def notice(self, message: str, counters: Mapping[str, Any]) -> None:
        """A reader's news for people (``"warp fallback: narrower blocks"``), with the
        source's counters summed over the workers so far. Runs in the coordinator's
        event loop; it must not block."""
        ...


def pass_notice(progress: object, message: str, counters: Mapping[str, Any]) -> None:
    """Hand a notice to ``progress`` if it takes notices; plain callbacks ignore them."""
    if isinstance(progress, NoticeReceiver):
        progress.notice(message, counters)


def human_bytes(n: float) -> str:
    """``1536`` → ``1.5 KiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError


def human_seconds(s: float) -> str:
    """``75`` → ``1m15s``."""
    s = max(0, int(round(s)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def bar_line(done: int, total: int, elapsed: float, width: int = 30, note: str = "") -> str:
    """One line: bar, tiles done/total, rate, ETA, and a note if there is one."""
    frac = done / total if total else 1.0
    filled = int(frac * width)
    rate = done / elapsed if elapsed > 0 else 0.0
    eta = (total - done) / rate if rate > 0 else 0.0
    bar = "#" * filled + "-" * (width - filled)
    line = f"[{bar}] {done}/{total} tiles  {rate:,.0f} tiles/s  ETA {human_seconds(eta)}"
    return f"{line}  [{note}]" if note else line


def notice_note(messages: Mapping[str, int]) -> str:
    """``{"warp fallback: narrower blocks": 3}`` → ``warp fallback: narrower blocks x3``."""
    return "; ".join(m if n == 1 else f"{m} x{n}" for m, n in messages.items())


class ProgressBar:
    """Redraws :func:`bar_line` on ``stream`` at most every ``interval`` seconds, if it is a terminal.

    Notices (:class:`NoticeReceiver`) join the bar, counted (``x3``). Off a terminal
    there is no bar, so each kind of notice is written once as a line of its own:
    a fallback is worth knowing about while a long build still runs.
    """

    def __init__(self, stream: TextIO = sys.stderr, interval: float = 0.1) -> None:
        self.stream = stream
        self.enabled = stream.isatty()
        self.interval = interval
        self.start = time.monotonic()
        self._last = 0.0
        self._done, self._total = 0, 0
        #: Notices so far, by message, in the order they first came.
        self.notices: dict[str, int] = {}

    def __call__(self, done: int, total: int) -> None:
        self._done, self._total = done, total
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < self.interval and done < total:
            return
        self._draw(now)

    def notice(self, message: str, counters: Mapping[str, Any]) -> None:
        """Count the notice and show it at once."""
        first = message not in self.notices
        self.notices[message] = self.notices.get(message, 0) + 1
        if self.enabled:
            self._draw(time.monotonic())
        elif first:
            self.stream.write(f"pyramidd: {message}\n")
            self.stream.flush()

    def _draw(self, now: float) -> None:
        self._last = now
        line = bar_line(self._done, self._total, now - self.start, note=notice_note(self.notices))
        self.stream.write("\r" + line + "\x1b[K")
        self.stream.flush()

    def close(self) -> None:
        """End the bar's line."""
        if self.enabled:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
