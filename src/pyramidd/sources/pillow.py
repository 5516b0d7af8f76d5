"""The Pillow source: PNG, JPEG, GIF, BMP, WebP and anything else Pillow opens.

These formats cannot be read region by region, so the image is decoded **once** per
build into a shared-memory segment that every render worker then reads:

1. ``probe`` (coordinator) reads the header, checks the pixel limit and picks the
   segment's name with :func:`pyramidd.shm.segment_name`, owned by the coordinator.
2. ``prepare`` (one render worker) creates the segment under that name and decodes
   into it, returning a :class:`~pyramidd.sources.raster.RasterSource`.
3. Every worker opens the raster source: it attaches the segment and slices it.
4. ``release`` (coordinator, when the build ends however it ends) unlinks the name.

L, RGB and RGBA images of PNG, JPEG, BMP, WebP, PPM and TGA files are decoded by
Pillow straight into the segment (RGB is decoded four bytes a pixel, as Pillow stores
it, then packed to three in place and the segment shrunk), so a huge image is never
held twice. Other modes and formats are decoded by Pillow and converted into the
segment strip by strip. Modes convert by the rule in
:mod:`pyramidd.sources.convert`: 1-bit → L; palette → RGB, or RGBA with
transparency; CMYK, YCbCr, LAB → RGB; 16-bit grey and 16-bit RGB(A) PNG → 8 bits by
``(v + 128) // 257``; 32-bit and float images are refused. Only the first frame of an
animation is read; EXIF orientation is not applied.

Pillow's own decompression-bomb limit is switched off: pyramidd checks the header's
size against ``--max-pixels`` itself, before decoding, and says how to raise it.
"""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .. import shm
from ..errors import ImageTooLarge, InputError
from ..options import BuildOptions
from .convert import Conversion, palette_table, unsupported
from .raster import ArrayReader, RasterSource, check_size, open_input, pixels_view
from .rows import RowStream, check_png_data, open_stream, stream_kind

#: Modes Pillow decodes straight into our buffer, and the raw layout it stores them in.
_DIRECT = {"L": "L", "RGB": "RGBX", "RGBA": "RGBA"}
#: Formats whose Pillow loader decodes into the image memory it finds already set.
#: Not every loader does: ICO's and ICNS's take memory of the right size for an image
#: already loaded and decode nothing (all black), and the JPEG 2000 decoder cannot
#: write RGB into four-byte pixels. The others are decoded by Pillow and copied.
_DIRECT_FORMATS = {"PNG", "JPEG", "BMP", "WEBP", "PPM", "TGA"}

#: Bytes a pixel takes in Pillow's own image memory, by mode (4 for the rest).
_PILLOW_PIXEL_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}

#: Rows converted at a time on the strip-by-strip path (bounded extra memory).
_STRIP_BYTES = 8 << 20


def _pillow() -> Any:
    from PIL import Image

    # pyramidd enforces --max-pixels on the header itself; Pillow's guard would raise
    # a bare DecompressionBombError (or warn) on images the user allowed.
    Image.MAX_IMAGE_PIXELS = None
    return Image


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _claimed_by(prefix: bytes) -> list[str]:
    """Pillow formats whose signature check accepts ``prefix``."""
    Image = _pillow()
    Image.init()
    claimed = []
    for fid in Image.ID:
        accept = Image.OPEN[fid][1]
        try:
            if accept is not None and accept(prefix):
                claimed.append(fid)
        except Exception:  # a plugin's signature check choking on odd bytes: not its file
            pass
    return claimed


def _why_not(fid: str, f: BinaryIO, path: Path) -> str:
    """The error the format ``fid`` raises on ``f``: Pillow's open hides it."""
    Image = _pillow()
    f.seek(0)
    try:
        Image.OPEN[fid][0](f, str(path))
    except Exception as exc:  # any failure of the format's header parser is the reason
        return _first_line(exc)
    return "unreadable header"


def _sixteen_bit_png(im: Any) -> str | None:
    """The PNG colour type (``LA``, ``RGB``, ``RGBA``) of a 16-bit colour PNG, else None.

    Pillow would cut these to 8 bits by dropping the low byte (and opens 16-bit LA as
    RGBA), so they are decoded another way.
    """
    if im.format != "PNG" or im.mode not in ("RGB", "RGBA"):
        return None
    rawmode = _rawmode(im)
    if rawmode is None or not rawmode.endswith(";16B"):
        return None
    return rawmode.split(";")[0]


def _rawmode(im: Any) -> str | None:
    """How the opened image's pixels are stored in the file (Pillow's raw mode)."""
    if not im.tile:
        return None
    rawmode = im.tile[0].args
    rawmode = rawmode[0] if isinstance(rawmode, tuple) else rawmode
    return rawmode if isinstance(rawmode, str) else None


def _colour_key(im: Any) -> tuple[int, ...] | None:
    """A grey or RGB PNG's transparent colour (its tRNS chunk), in the samples Pillow
    (or, at 16 bits a sample, the PNG decoder) gives, else None."""
    key = im.info.get("transparency")
    if im.format != "PNG" or key is None or im.mode in ("P", "PA", "LA", "RGBA"):
        return None
    if isinstance(key, tuple):
        return tuple(int(v) for v in key) if len(key) == 3 else None
    # Pillow stretches 2- and 4-bit grey to 8 bits; the key is stored unstretched
    stretch = {"L;2": 255 // 3, "L;4": 255 // 15}.get(_rawmode(im) or "", 1)
    return (int(key) * stretch,)


def _conversion(im: Any, name: str, loaded: bool) -> Conversion:
    """How an opened Pillow image's pixels convert; the palette only once ``loaded``."""
    mode = im.mode
    png16 = _sixteen_bit_png(im)
    key = _colour_key(im)
    if png16:
        return Conversion("grey" if png16 == "LA" else "rgb", bits=16, alpha=png16 != "RGB",
                          key=key)
    if mode in ("P", "PA"):
        if loaded:
            colours = np.array(im.getpalette("RGBA") or [], np.uint8).reshape(-1, 4)
            table = palette_table(colours, 8)
            transparency = im.info.get("transparency")
            if isinstance(transparency, int):
                table[transparency, 3] = 0
            elif isinstance(transparency, bytes):
                table[: len(transparency), 3] = np.frombuffer(transparency, np.uint8)[:256]
            if not _has_transparency(im):
                table = np.ascontiguousarray(table[:, :3])
        else:  # the size of a placeholder palette is all the probe needs
            table = np.zeros((256, 4 if _has_transparency(im) else 3), np.uint8)
        return Conversion("palette", palette=table, alpha=mode == "PA")
    simple = {
        "1": Conversion("grey", bits=1),
        "L": Conversion("grey"),
        "LA": Conversion("grey", alpha=True),
        "RGB": Conversion("rgb"),
        "RGBX": Conversion("rgb"),
        "RGBA": Conversion("rgb", alpha=True),
        "CMYK": Conversion("cmyk"),
        "YCbCr": Conversion("ycbcr"),
        "LAB": Conversion("lab", signed_ab=True),  # Pillow keeps a/b as signed bytes
        "I;16": Conversion("grey", bits=16),
        "I;16L": Conversion("grey", bits=16),
        "I;16B": Conversion("grey", bits=16),
        "I;16N": Conversion("grey", bits=16),
    }
    if mode == "I" and im.format == "PNG":  # 16-bit grey PNG in Pillow's 32-bit mode
        mode = "I;16"
    if mode in simple:
        return replace(simple[mode], key=key) if key else simple[mode]
    raise unsupported(name, f"Pillow mode {mode!r} ({im.format})")


def _has_transparency(im: Any) -> bool:
    palette = getattr(im, "palette", None)
    return "transparency" in im.info or bool(palette and palette.mode.endswith("A"))


@dataclass(frozen=True)
class PillowSource:
    """An image Pillow decodes, prepared once per build into shared memory.

    ``segment`` is the shared-memory name chosen in the coordinator (whose pid it
    carries, ``owner_pid``), so the coordinator can unlink it whatever happens to the
    worker that creates it.
    """

    path: Path
    width: int
    height: int
    bands: int
    #: Pillow's mode and format name, as probed (for messages and checks).
    mode: str
    format: str
    segment: str
    owner_pid: int
    #: How it can be decoded by rows instead of whole (``"png"``, ``"jpeg"``), if it can.
    stream_kind: str | None = None
    #: A 16-bit PNG, which Pillow cannot decode whole (see :func:`_decode_png16`).
    png16: bool = False

    @property
    def nbytes(self) -> int:
        """Bytes of the decoded 8-bit image."""
        return self.width * self.height * self.bands

    @property
    def direct(self) -> bool:
        """Whether Pillow decodes it straight into the segment: L, RGB or RGBA kept as
        they are (``len(mode)`` bands), of a format whose loader writes there."""
        return (self.mode in _DIRECT and self.format in _DIRECT_FORMATS and not self.png16
                and self.bands == len(self.mode))

    @property
    def decode_bytes(self) -> int:
        """Most memory decoding it whole takes: the segment, and the image Pillow (or
        the 16-bit PNG decoder) decodes into first when it cannot decode into the
        segment."""
        if self.direct:
            return self._capacity()
        pixels = self.width * self.height
        own = pixels * (2 * self.bands if self.png16 else _PILLOW_PIXEL_BYTES.get(self.mode, 4))
        return own + self.nbytes

    def stream(self) -> RowStream:
        """Its rows, top to bottom, decoded as they are read (see :mod:`.rows`).

        For a banded build; only when :attr:`stream_kind` is set. Runs in a render worker.
        """
        if self.stream_kind is None:
            raise ValueError(f"{self.path.name}: {self.format} cannot be decoded by rows")
        Image = _pillow()
        try:
            with Image.open(self.path) as im:
                if im.size != (self.width, self.height) or im.mode != self.mode:
                    raise InputError(
                        f"{self.path.name}: the file changed while it was being converted;"
                        " run it again"
                    )
                conversion = _conversion(im, self.path.name, loaded=False)
        except OSError as exc:
            raise InputError(f"{self.path.name}: cannot be read: {_first_line(exc)}") from None
        return open_stream(self.stream_kind, self.path, conversion)

    def prepare(self) -> RasterSource:
        """Decode into a new segment named :attr:`segment`. Runs in one render worker."""
        capacity = self._capacity()
        shm.check_room(self.path.name, capacity)
        try:
            segment = shm.create(capacity, name=self.segment)
        except FileExistsError:
            # Left by an earlier attempt in a worker that died: the name is this
            # build's, so replace it.
            shm.unlink(self.segment)
            segment = shm.create(capacity, name=self.segment)
        try:
            self._decode(segment.buf)
        except BaseException as exc:
            # The failed frames still hold views of the segment; drop them so that it
            # can be unmapped here rather than when the worker exits.
            _clear_frames(exc)
            try:
                segment.close()
            except BufferError:  # a view survived anyway: unmapped when the process exits
                pass
            shm.unlink(self.segment)
            raise
        segment.close()
        if capacity > self.nbytes:
            _shrink(self.segment, self.nbytes)
        return RasterSource(self.segment, self.width, self.height, self.bands, self.path)

    def release(self) -> None:
        """Unlink the segment; fine if it was never created. Runs in the coordinator."""
        shm.unlink(self.segment)

    def open(self) -> ArrayReader:
        """Decode into this process's memory and read from there.

        For use without the engine (one process); a build calls :meth:`prepare` once
        and opens the :class:`RasterSource` it returns in every worker instead.
        """
        buffer = bytearray(self._capacity())
        view = memoryview(buffer)
        self._decode(view)
        view.release()
        del buffer[self.nbytes :]  # the RGB packing slack
        array = np.frombuffer(buffer, np.uint8, self.nbytes).reshape(
            self.height, self.width, self.bands
        )
        return ArrayReader(array, Conversion("grey" if self.bands < 3 else "rgb",
                                             alpha=self.bands in (2, 4)))

    def _capacity(self) -> int:
        # Pillow keeps RGB at four bytes a pixel; decoding into our buffer needs room
        # for that layout before it is packed to three.
        if self.direct and self.mode == "RGB":
            return self.width * self.height * 4
        return self.nbytes

    def _decode(self, buffer: memoryview) -> None:
        """Decode the image into the first bytes of ``buffer``, packed ``(h, w, bands)``."""
        Image = _pillow()
        name = self.path.name
        try:
            f = open(self.path, "rb")
        except OSError as exc:
            raise InputError(f"{name}: cannot read it: {exc.strerror or exc}") from None
        # A file object (not a path) keeps Pillow from memory-mapping the file in place
        # of the buffer we hand it.
        with f:
            if self.format == "PNG" and not self.png16:  # the 16-bit decoder checks itself
                check_png_data(f, name)
                f.seek(0)
            try:
                im = Image.open(f)
            except Image.DecompressionBombError as exc:
                raise ImageTooLarge(f"{name}: {_first_line(exc)}") from None
            except Exception as exc:  # the file changed or broke since it was probed
                raise InputError(f"{name}: cannot be read: {_first_line(exc)}") from None
            with im:
                if im.size != (self.width, self.height) or im.mode != self.mode:
                    raise InputError(
                        f"{name}: the file changed while it was being converted; run it again"
                    )
                try:
                    if self.direct:
                        self._decode_direct(im, buffer)
                    else:
                        self._decode_converted(im, buffer)
                except InputError:
                    raise
                except Exception as exc:  # decoder errors are the data's fault
                    raise InputError(
                        f"{name}: truncated or corrupt image data ({_first_line(exc)})"
                    ) from None

    def _decode_direct(self, im: Any, buffer: memoryview) -> None:
        Image = _pillow()
        raw = _DIRECT[self.mode]
        try:
            core = Image.core.map_buffer(buffer, im.size, "raw", 0, (raw, 0, 1))
        except (ValueError, TypeError, MemoryError):  # this Pillow cannot map it
            self._decode_converted(im, buffer)
            return
        # Pillow decodes into the image memory it finds already set, here our buffer.
        im.im = core
        im.load()
        stored = im.im is core
        del core
        if not stored:  # this format's loader allocated its own memory: copy from it
            self._copy_strips(im, buffer, Conversion("rgb" if self.bands >= 3 else "grey",
                                                    alpha=self.bands in (2, 4)))
            return
        im.im = Image.core.new("L", (1, 1))  # let go of our buffer
        if raw == "RGBX":
            _pack_rgbx(buffer, self.height, self.width)

    def _decode_converted(self, im: Any, buffer: memoryview) -> None:
        name = self.path.name
        if _sixteen_bit_png(im):
            conversion = _conversion(im, name, loaded=False)
            f = im.fp
            f.seek(0)
            samples = _decode_png16(f.read())
            target = pixels_view(buffer, self.height, self.width, self.bands)
            for y0, y1 in _strips(self.height, self.width * samples.shape[2] * 2):
                target[y0:y1] = conversion.apply(samples[y0:y1])
            return
        im.load()
        self._copy_strips(im, buffer, _conversion(im, name, loaded=True))

    def _copy_strips(self, im: Any, buffer: memoryview, conversion: Conversion) -> None:
        if conversion.bands != self.bands or im.size != (self.width, self.height):
            raise InputError(
                f"{self.path.name}: Pillow decodes it as {im.mode} {im.size[0]}x{im.size[1]}, "
                f"not as its header says ({self.mode} {self.width}x{self.height})"
            )
        target = pixels_view(buffer, self.height, self.width, self.bands)
        for y0, y1 in _strips(self.height, self.width * 4):
            strip = np.asarray(im.crop((0, y0, self.width, y1)))
            target[y0:y1] = conversion.apply(strip)


def _clear_frames(exc: BaseException) -> None:
    """Drop the local variables of the finished frames of ``exc`` and its causes."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        traceback.clear_frames(current.__traceback__)
        current = current.__cause__ or current.__context__


def _strips(height: int, row_bytes: int) -> list[tuple[int, int]]:
    rows = max(1, _STRIP_BYTES // max(1, row_bytes))
    return [(y, min(height, y + rows)) for y in range(0, height, rows)]


def _pack_rgbx(buffer: memoryview, height: int, width: int) -> None:
    """Pack four-byte RGBX pixels to three-byte RGB in place, from the top down.

    Row ``y`` moves from byte ``4wy`` to ``3wy``: never past the rows still to move,
    so a forward pass is safe (numpy copies through a temporary where a strip
    overlaps itself).
    """
    src = np.ndarray((height, width, 4), np.uint8, buffer, 0)
    dst = np.ndarray((height, width, 3), np.uint8, buffer, 0)
    for y0, y1 in _strips(height, width * 4):
        dst[y0:y1] = src[y0:y1, :, :3]


def _shrink(name: str, nbytes: int) -> None:
    """Cut a segment to ``nbytes`` so the packing slack goes back to the system."""
    import _posixshmem

    fd = _posixshmem.shm_open("/" + name, os.O_RDWR, mode=0o600)
    try:
        os.ftruncate(fd, max(1, nbytes))
    finally:
        os.close(fd)


def _decode_png16(data: bytes) -> np.ndarray:
    """A 16-bit PNG as ``(h, w, samples)`` uint16, which Pillow cannot give."""
    import imagecodecs

    samples = imagecodecs.png_decode(data)
    return samples if samples.ndim == 3 else samples[:, :, None]


class PillowFormat:
    """Anything Pillow opens (PNG, JPEG, GIF, BMP, WebP, ...), decoded once into shared memory.

    Priority -1: Pillow opens many formats, so a dedicated source (TIFF, or a
    plugin's) at the default priority is asked first.
    """

    name = "pillow"
    priority = -1

    def probe(self, path: Path, options: BuildOptions) -> PillowSource | None:
        """Read the header; ``None`` for a file no Pillow format claims.

        Runs in the coordinator. A file a format claims by its signature but cannot
        read raises :class:`InputError`.
        """
        Image = _pillow()
        f = open_input(path)
        if f is None:
            return None
        name = path.name
        with f:
            prefix = f.read(16)
            if not prefix:
                raise InputError(f"{name}: the file is empty (0 bytes)")
            f.seek(0)
            try:
                im = Image.open(f)
            except Image.DecompressionBombError as exc:
                raise ImageTooLarge(f"{name}: {_first_line(exc)}") from None
            except Exception as exc:  # not an image, or a broken one: see who claims it
                claimed = _claimed_by(prefix)
                if not claimed:
                    return None
                reason = _why_not(claimed[0], f, path) or _first_line(exc)
                raise InputError(
                    f"{name}: looks like a {claimed[0]} file but cannot be read ({reason})"
                ) from None
            with im:
                width, height = im.size
                check_size(name, width, height, options)
                conversion = _conversion(im, name, loaded=False)
                return PillowSource(
                    path=path,
                    width=width,
                    height=height,
                    bands=conversion.bands,
                    mode=im.mode,
                    format=im.format or "?",
                    segment=shm.segment_name(os.getpid()),
                    owner_pid=os.getpid(),
                    stream_kind=stream_kind(path, im.format or "", im.mode, im.info),
                    png16=_sixteen_bit_png(im) is not None,
                )


PILLOW = PillowFormat()

__all__ = ["PILLOW", "PillowFormat", "PillowSource"]
