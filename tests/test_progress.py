"""The progress bar and its notices (a warp falling back shows while the build runs)."""

from __future__ import annotations

import io

from pyramidd.progress import NoticeReceiver, ProgressBar, bar_line, notice_note, pass_notice

FALLBACK = "warp fallback: narrower blocks"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bar_line_carries_a_note_only_when_there_is_one() -> None:
    assert bar_line(5, 10, 1.0).endswith("ETA 1s")
    assert bar_line(5, 10, 1.0, note=FALLBACK).endswith(f"ETA 1s  [{FALLBACK}]")
    assert notice_note({FALLBACK: 1}) == FALLBACK
    assert notice_note({FALLBACK: 3, "other": 1}) == f"{FALLBACK} x3; other"


def test_a_notice_is_drawn_in_the_bar_at_once_and_counted() -> None:
    term = Terminal()
    bar = ProgressBar(term, interval=3600)  # only notices and the last tile redraw
    assert isinstance(bar, NoticeReceiver)
    bar(3, 10)
    bar(4, 10)
    pass_notice(bar, FALLBACK, {"fallbacks": 1})
    assert term.getvalue().rsplit("\r", 1)[-1].startswith("[" + "#" * 12)
    assert "4/10 tiles" in term.getvalue().rsplit("\r", 1)[-1]
    assert term.getvalue().endswith(f"[{FALLBACK}]\x1b[K")
    pass_notice(bar, FALLBACK, {"fallbacks": 2})
    assert term.getvalue().endswith(f"[{FALLBACK} x2]\x1b[K")
    bar(10, 10)
    assert term.getvalue().endswith(f"[{FALLBACK} x2]\x1b[K")


def test_off_a_terminal_each_kind_of_notice_is_one_line() -> None:
    pipe = io.StringIO()
    bar = ProgressBar(pipe)
    bar(1, 10)
    for _ in range(3):
        bar.notice(FALLBACK, {})
    bar(10, 10)
    bar.close()
    assert pipe.getvalue() == f"pyramidd: {FALLBACK}\n"
    assert bar.notices == {FALLBACK: 3}


def test_plain_callbacks_ignore_notices() -> None:
    seen: list[tuple[int, int]] = []
    pass_notice(lambda done, total: seen.append((done, total)), FALLBACK, {})
    pass_notice(None, FALLBACK, {})
    assert seen == []
