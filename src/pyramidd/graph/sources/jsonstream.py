"""Streaming reader for a JSON object whose big members are arrays.

Graph JSON formats are one object with a few small members and two large arrays
(``nodes``, ``edges``/``links``). :func:`iter_members` walks the top-level object and
yields the elements of the named arrays one at a time, decoding each with the C
decoder of :mod:`json` from a sliding buffer, so memory stays at one element plus one
block whatever the file size.
"""

from __future__ import annotations

import codecs
import json
from typing import Any, BinaryIO, Iterator

from ...errors import InputError

BLOCK = 1 << 20
_WS = " \t\n\r"
_decoder = json.JSONDecoder()


class _Buffer:
    def __init__(self, f: BinaryIO, name: str) -> None:
        self.f = f
        self.name = name
        self.dec = codecs.getincrementaldecoder("utf-8-sig")()  # a BOM is dropped
        self.buf = ""
        self.pos = 0
        self.eof = False

    def more(self, want: int = BLOCK) -> bool:
        if self.eof:
            return False
        if self.pos > BLOCK:  # drop what was consumed
            self.buf = self.buf[self.pos:]
            self.pos = 0
        data = self.f.read(max(want, BLOCK))
        if not data:
            self.eof = True
            self.buf += self.dec.decode(b"", final=True)
            return False
        self.buf += self.dec.decode(data)
        return True

    def skip_ws(self) -> str:
        """Skip whitespace and return the next character ('' at the end)."""
        while True:
            buf, pos = self.buf, self.pos
            n = len(buf)
            while pos < n and buf[pos] in _WS:
                pos += 1
            self.pos = pos
            if pos < n:
                return buf[pos]
            if not self.more():
                return ""

    def expect(self, chars: str) -> str:
        ch = self.skip_ws()
        if not ch or ch not in chars:
            self.fail(f"expected {' or '.join(repr(c) for c in chars)}, found {ch or 'end of file'!r}")
        self.pos += 1
        return ch

    def value(self) -> Any:
        """Decode one complete JSON value at the cursor."""
        self.skip_ws()
        while True:
            try:
                value, end = _decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                if self.more(len(self.buf)):
                    continue
                self.fail(f"{exc.msg} at character {exc.pos}")
            except RecursionError:  # Python's decoder recurses once per nesting level
                self.fail(f"a value at character {self.pos} is nested too deeply")
            # A number at the very end of the buffer may continue in the next block.
            if end == len(self.buf) and not self.eof and self.more():
                continue
            self.pos = end
            return value

    def fail(self, what: str) -> None:
        raise InputError(f"{self.name}: not valid JSON: {what}; check the file is complete")


def iter_members(f: BinaryIO, arrays: set[str], name: str = "input") -> Iterator[tuple[str, Any, bool]]:
    """Yield ``(key, value, False)`` for small members of the top-level object and
    ``(key, element, True)`` for each element of the members named in ``arrays``."""
    b = _Buffer(f, name)
    b.expect("{")
    if b.skip_ws() == "}":
        return
    while True:
        key = b.value()
        if not isinstance(key, str):
            b.fail("object key is not a string")
        b.expect(":")
        if key in arrays and b.skip_ws() == "[":
            b.pos += 1
            if b.skip_ws() == "]":
                b.pos += 1
            else:
                while True:
                    yield key, b.value(), True
                    if b.expect(",]") == "]":
                        break
        else:
            yield key, b.value(), False
        if b.expect(",}") == "}":
            return
