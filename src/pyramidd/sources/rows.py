"""Row streams: formats that only decode front to back, read a band of rows at a time.

A baseline JPEG or a PNG cannot be read region by region, and decoding it whole
needs memory for the whole image. A :class:`RowStream` hands out the next rows on
demand, holding only what the decoder itself needs, so a build can turn such an
image into a pyramid one band of builder rows at a time (see
:mod:`pyramidd.bands`).

- **PNG** (non-interlaced, 8 or 16 bits a sample, any colour type): the zlib
  stream is inflated incrementally, and each band's filtered scanlines are unfiltered
  by Pillow (or imagecodecs for 16 bits) as a small PNG of their own whose first row
  is the previous band's last row, unfiltered: PNG filters only look one row up, so
  that row is all the state a band needs.
- **JPEG** (grey or colour): libjpeg-turbo's ``djpeg`` writes the decoded rows to a
  pipe as it goes (binary PNM), as libjpeg reads scanlines; the same library Pillow
  decodes with, so pixels are the same.

Interlaced PNG, PNG of 1, 2 or 4 bits, CMYK JPEG and other formats have no stream:
:func:`stream_kind` says ``None`` and they are decoded whole.
"""

from __future__ import annotations

import io
import os
import shutil
import struct
import subprocess
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import numpy as np

from ..errors import InputError
from ..sinks.png import chunk
from .convert import Conversion, palette_table

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Samples per pixel of each PNG colour type.
_PNG_SAMPLES = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
#: Compressed bytes fed to zlib per step.
_CHUNK = 1 << 20
#: Decoded bytes handled at a time: the transient copies of a read stay this small
#: however many rows are asked for.
_ROWS_BYTES = 8 << 20


def _pieces(out: np.ndarray, row_bytes: int) -> list[np.ndarray]:
    """``out`` cut into runs of rows of about :data:`_ROWS_BYTES` decoded bytes."""
    step = max(1, _ROWS_BYTES // max(1, row_bytes))
    return [out[y : y + step] for y in range(0, out.shape[0], step)]


class RowStream(Protocol):
    """The rows of an image, top to bottom, converted to 8-bit bands."""

    width: int
    height: int
    bands: int

    def read(self, out: np.ndarray) -> None:
        """Fill ``out`` (``(n, width, bands)`` uint8) with the next ``n`` rows."""
        ...

    def close(self) -> None:
        """Let go of the file and of any decoder process."""
        ...


def stream_kind(path: Path, image_format: str, mode: str, info: dict[str, Any]) -> str | None:
    """``"png"`` or ``"jpeg"`` when the image can be streamed by rows, else ``None``.

    ``image_format``, ``mode`` and ``info`` are what Pillow's header parse found.
    """
    if image_format == "PNG":
        header = _png_header(path)
        if header is None:
            return None
        _, _, depth, _, interlace = header
        return "png" if interlace == 0 and depth in (8, 16) else None
    if image_format == "JPEG" and mode in ("L", "RGB") and shutil.which("djpeg"):
        return "jpeg"
    return None


def open_stream(kind: str, path: Path, conversion: Conversion) -> RowStream:
    """Open the row stream of ``kind`` (from :func:`stream_kind`) over ``path``."""
    if kind == "png":
        return PngRows(path, conversion)
    if kind == "jpeg":
        return JpegRows(path, conversion)
    raise ValueError(f"no row stream of kind {kind!r}")


# --------------------------------------------------------------------------- PNG


def _chunks(f: BinaryIO) -> Any:
    """``(type, data offset, length)`` of each chunk after the signature."""
    position = len(_PNG_SIGNATURE)
    while True:
        f.seek(position)
        head = f.read(8)
        if len(head) < 8:
            return
        length, kind = struct.unpack(">I4s", head)
        yield kind, position + 8, length
        position += 8 + length + 4  # the caller may have moved the file: go by offsets


def _idat_data(f: BinaryIO, chunks: list[tuple[int, int]], name: str) -> Iterator[bytes]:
    """The compressed image data of the IDAT ``chunks`` (offset, length), in pieces of
    at most :data:`_CHUNK` bytes, each chunk's CRC checked once it has been read.

    Pillow checks neither (a damaged chunk decodes to damaged pixels); libpng does.
    """
    for offset, length in chunks:
        crc = zlib.crc32(b"IDAT")
        done = 0
        while True:
            step = min(_CHUNK, length - done)
            f.seek(offset + done)
            data = f.read(step)
            if len(data) < step:
                raise InputError(f"{name}: truncated PNG data")
            crc = zlib.crc32(data, crc)
            done += step
            if done == length:  # checked before its last piece is inflated
                stored = f.read(4)
                if len(stored) < 4:
                    raise InputError(f"{name}: truncated PNG data")
                if struct.unpack(">I", stored)[0] != crc:
                    raise InputError(f"{name}: corrupt PNG data (an image data chunk at"
                                     f" byte {offset - 8:,} fails its CRC check)")
            if data:
                yield data
            if done == length:
                break


def _data_bytes(width: int, height: int, depth: int, colour: int, interlace: int) -> list[int]:
    """Bytes of filtered scanlines (a filter byte each) the PNG's image data inflates
    to: one total per pass, seven for Adam7."""
    passes = [(0, 0, 1, 1)] if not interlace else [
        (0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
        (0, 1, 1, 2)]
    bits = _PNG_SAMPLES.get(colour, 1) * depth
    out = []
    for x0, y0, dx, dy in passes:
        w, h = -(-(width - x0) // dx), -(-(height - y0) // dy)
        out.append(h * (1 + (w * bits + 7) // 8) if w > 0 and h > 0 else 0)
    return out


def check_png_data(f: BinaryIO, name: str) -> None:
    """Raise :class:`InputError` if the image data of the PNG open as ``f`` (named
    ``name``) fails a CRC check or inflates to fewer rows than its header says.

    For a PNG Pillow decodes whole: where a whole zlib stream holds fewer rows than the
    header says, Pillow stops there without an error and leaves the rest black. This
    inflates the data once more (output discarded, a piece at a time) to count them.
    """
    header = _read_png_header(f)
    if header is None:
        raise InputError(f"{name}: not a PNG file any more")
    width, height, depth, colour, interlace = header
    passes = _data_bytes(width, height, depth, colour, interlace)
    want, have = sum(passes), 0
    inflate = zlib.decompressobj()
    chunks = []
    for kind, offset, length in _chunks(f):
        if kind == b"IEND":
            break
        if kind == b"IDAT":
            chunks.append((offset, length))
    try:
        for data in _idat_data(f, chunks, name):
            while data and have < want:
                have += len(inflate.decompress(data, _CHUNK))
                data = inflate.unconsumed_tail
    except zlib.error as exc:
        raise InputError(f"{name}: corrupt PNG data ({exc})") from None
    if have < want:
        where = (f"after row {have // (passes[0] // height)} of {height}" if not interlace
                 else "before its last row")
        raise InputError(f"{name}: truncated PNG data: the image data ends {where}")


def _png_header(path: Path) -> tuple[int, int, int, int, int] | None:
    """Width, height, bit depth, colour type and interlace method from IHDR."""
    with open(path, "rb") as f:
        return _read_png_header(f)


def _read_png_header(f: BinaryIO) -> tuple[int, int, int, int, int] | None:
    f.seek(0)
    if f.read(8) != _PNG_SIGNATURE:
        return None
    head = f.read(8)
    if len(head) < 8 or head[4:] != b"IHDR":
        return None
    data = f.read(13)
    if len(data) < 13:
        return None
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", data)
    return width, height, depth, colour, interlace


def _palette_conversion(plte: bytes, trns: bytes | None) -> Conversion:
    """The palette of a PNG as the Pillow source converts it: RGB, or RGBA with tRNS."""
    colours = np.frombuffer(plte, np.uint8)[: len(plte) // 3 * 3].reshape(-1, 3)
    rgba = np.concatenate([colours, np.full((len(colours), 1), 255, np.uint8)], axis=1)
    table = palette_table(rgba, 8)
    if trns is None:
        return Conversion("palette", palette=np.ascontiguousarray(table[:, :3]))
    alphas = np.frombuffer(trns[:256], np.uint8)
    table[: len(alphas), 3] = alphas
    return Conversion("palette", palette=table)


class PngRows:
    """A non-interlaced 8- or 16-bit PNG, inflated and unfiltered a band at a time."""

    def __init__(self, path: Path, conversion: Conversion) -> None:
        header = _png_header(path)
        if header is None:
            raise InputError(f"{path.name}: not a PNG file any more")
        self.width, self.height, self.depth, self.colour, _ = header
        self.name = path.name
        self._row_bytes = self.width * _PNG_SAMPLES[self.colour] * self.depth // 8
        self._f = open(path, "rb")
        # Chunks a band's own PNG must repeat: the palette and its transparency.
        extra: dict[bytes, bytes] = {}
        idat: list[tuple[int, int]] = []
        for kind, offset, length in _chunks(self._f):
            if kind == b"IDAT":
                idat.append((offset, length))
            elif kind in (b"PLTE", b"tRNS"):
                self._f.seek(offset)
                extra[kind] = self._f.read(length)
            elif kind == b"IEND":
                break
        self._extra = b"".join(chunk(k, v) for k, v in extra.items())
        if self.colour == 3:
            conversion = _palette_conversion(extra.get(b"PLTE", b""), extra.get(b"tRNS"))
        self.conversion = conversion
        self.bands = conversion.bands
        self._inflate = zlib.decompressobj()
        self._pending = bytearray()  # inflated, not yet unfiltered
        self._data = _idat_data(self._f, idat, self.name)
        self._previous = b""  # the row above the next one, unfiltered
        self._row = 0

    def _inflate_more(self, want: int) -> None:
        """Inflate until ``want`` bytes are pending, or the data runs out."""
        while len(self._pending) < want:
            data = self._inflate.unconsumed_tail or next(self._data, b"")
            if not data:
                rows = self._row + len(self._pending) // (self._row_bytes + 1)
                raise InputError(f"{self.name}: truncated PNG data: the image data ends"
                                 f" after row {rows} of {self.height}")
            try:
                # Bounded output: a zlib bomb cannot inflate past what the band needs.
                self._pending += self._inflate.decompress(data, want - len(self._pending))
            except zlib.error as exc:
                raise InputError(f"{self.name}: corrupt PNG data ({exc})") from None

    def read(self, out: np.ndarray) -> None:
        """Fill ``out`` with the next ``len(out)`` rows."""
        for piece in _pieces(out, self._row_bytes):
            self._read(piece)

    def _read(self, out: np.ndarray) -> None:
        n = out.shape[0]
        if n == 0:
            return
        if self._row + n > self.height:
            raise ValueError(f"rows {self._row}..{self._row + n} past the image's {self.height}")
        stride = self._row_bytes + 1
        self._inflate_more(n * stride)
        # The band's own PNG: the previous row unfiltered (filter 0) and then the
        # band's rows as stored, so "up", "average" and "paeth" see the right row.
        lead = 0 if self._row == 0 else 1
        with memoryview(self._pending) as pending:
            raw = (b"\x00" + self._previous if lead else b"") + pending[: n * stride]
        del self._pending[: n * stride]
        samples = self._unfilter(raw, n + lead)[lead:]
        self._previous = self._raw_row(samples[-1])
        out[...] = self.conversion.apply(samples)
        self._row += n

    def _unfilter(self, raw: bytes, rows: int) -> np.ndarray:
        """Samples of ``rows`` filtered scanlines, ``(rows, width, samples)``."""
        ihdr = struct.pack(">IIBBBBB", self.width, rows, self.depth, self.colour, 0, 0, 0)
        png = b"".join((
            _PNG_SIGNATURE,
            chunk(b"IHDR", ihdr),
            self._extra,
            chunk(b"IDAT", zlib.compress(raw, 0)),  # stored: only the filters are undone
            chunk(b"IEND", b""),
        ))
        try:
            if self.depth == 16:
                import imagecodecs

                samples = imagecodecs.png_decode(png)
            else:
                from PIL import Image

                with Image.open(io.BytesIO(png)) as im:
                    samples = np.asarray(im)
        except Exception as exc:  # a bad filter type is the data's fault
            raise InputError(f"{self.name}: corrupt PNG data ({exc})") from None
        samples = samples if samples.ndim == 3 else samples[:, :, None]
        # The 16-bit decoder adds an alpha sample for a tRNS colour key: the rows as
        # stored have none (the conversion makes alpha from the key)
        return samples[:, :, : _PNG_SAMPLES[self.colour]]

    def _raw_row(self, samples: np.ndarray) -> bytes:
        """One row of samples as PNG stores it unfiltered."""
        return samples.astype(">u2" if self.depth == 16 else np.uint8).tobytes()

    def close(self) -> None:
        """Close the file."""
        self._f.close()


# --------------------------------------------------------------------------- JPEG


class JpegRows:
    """A JPEG decoded by ``djpeg`` into a pipe, rows read as they come."""

    def __init__(self, path: Path, conversion: Conversion) -> None:
        self.name = path.name
        self.conversion = conversion
        self.bands = conversion.bands
        self._process = subprocess.Popen(
            # Absolute: a relative name starting with "-" would be read as a switch.
            ["djpeg", "-pnm", os.path.abspath(path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self._process.stdout is not None
        self._out = self._process.stdout
        magic, self.width, self.height = self._header()
        self._samples = 1 if magic == b"P5" else 3
        self._row = 0

    def _token(self) -> bytes:
        token = b""
        while True:
            c = self._out.read(1)
            if not c:
                self._fail("no image header")
            if c == b"#":
                self._out.readline()
            elif c.isspace():
                if token:
                    return token
            else:
                token += c

    def _header(self) -> tuple[bytes, int, int]:
        magic = self._token()
        if magic not in (b"P5", b"P6"):
            self._fail("unexpected output")
        width, height, maxval = (int(self._token()) for _ in range(3))
        if maxval != 255:
            self._fail(f"{maxval + 1} levels a sample")
        return magic, width, height

    def _messages(self) -> str:
        """What djpeg wrote to stderr, once it has exited."""
        assert self._process.stderr is not None
        return self._process.stderr.read().decode(errors="replace").strip()

    def _fail(self, what: str) -> None:
        self.close()
        raise InputError(f"{self.name}: cannot be decoded ({self._messages() or what})")

    def read(self, out: np.ndarray) -> None:
        """Fill ``out`` with the next ``len(out)`` rows."""
        for piece in _pieces(out, self.width * self._samples):
            self._read(piece)

    def _read(self, out: np.ndarray) -> None:
        n = out.shape[0]
        # Plain grey or RGB rows go from the pipe straight into ``out`` (a band slot):
        # no buffer, no copy.
        direct = (
            self.conversion.identity and out.shape[2] == self._samples
            and out.flags.c_contiguous
        )
        buffer = out if direct else np.empty((n, self.width, self._samples), np.uint8)
        view = memoryview(buffer).cast("B")
        got = 0
        while got < len(view):
            k = self._out.readinto(view[got:])
            if not k:
                self._fail("truncated JPEG data")
            got += k
        if not direct:
            out[...] = self.conversion.apply(buffer)
        self._row += n
        if self._row >= self.height:
            self._finish()

    def _finish(self) -> None:
        """After the last row: a JPEG cut short is an error, as Pillow makes it.

        libjpeg pads a truncated image with grey and only warns (exit status 2);
        other warnings (extraneous bytes, say) Pillow ignores, and so does this.
        """
        self._process.wait()
        message = self._messages()
        if self._process.returncode == 1 or "Premature end" in message:
            raise InputError(
                f"{self.name}: truncated or corrupt image data ({message or 'djpeg failed'})"
            )

    def close(self) -> None:
        """Stop djpeg (it may be mid-image) and reap it."""
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        if self._out and not self._out.closed:
            self._out.close()
