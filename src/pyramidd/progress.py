"""The progress bar of ``pyramidd build`` and the numbers it shows.

Shown only on a terminal; the rate and ETA are over the whole run so far, which is
steady enough for tile builds.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


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


def bar_line(done: int, total: int, elapsed: float, width: int = 30) -> str:
    """One line: bar, tiles done/total, rate, ETA."""
    frac = done / total if total else 1.0
    filled = int(frac * width)
    rate = done / elapsed if elapsed > 0 else 0.0
    eta = (total - done) / rate if rate > 0 else 0.0
    bar = "#" * filled + "-" * (width - filled)
    return f"[{bar}] {done}/{total} tiles  {rate:,.0f} tiles/s  ETA {human_seconds(eta)}"


class ProgressBar:
    """Redraws :func:`bar_line` on ``stream`` at most every ``interval`` seconds, if it is a terminal."""

    def __init__(self, stream: TextIO = sys.stderr, interval: float = 0.1) -> None:
        self.stream = stream
        self.enabled = stream.isatty()
        self.interval = interval
        self.start = time.monotonic()
        self._last = 0.0

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < self.interval and done < total:
            return
        self._last = now
        self.stream.write("\r" + bar_line(done, total, now - self.start) + "\x1b[K")
        self.stream.flush()

    def close(self) -> None:
        """End the bar's line."""
        if self.enabled:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
