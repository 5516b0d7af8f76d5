"""Tile encoding: from a ``(h, w, bands)`` uint8 array to the bytes of one tile file.

This is the hot path of every raster build (one call per tile, thousands per image),
so a :class:`TileEncoder` does its band conversion and padding in one pass into one
new array, and skips even that when the pixels can be handed to Pillow as they are.

Band rules, for 1 (L), 2 (LA), 3 (RGB) or 4 (RGBA) input bands:

- JPEG has no alpha: LA and RGBA are flattened onto ``options.background`` (its
  luminance for LA), giving L or RGB.
- PNG keeps the bands. With ``alpha=True`` (layouts that pad edge tiles with
  transparency) L becomes LA and RGB becomes RGBA, on *every* tile, so a pyramid
  never mixes band counts.
- WebP stores only RGB and RGBA: L is spread to RGB, LA to RGBA; ``alpha=True``
  makes every tile RGBA (libwebp itself drops an alpha plane that is all opaque).

Padding (``size=`` larger than the pixels) fills with transparent black when the
encoded tile has alpha, else with the background colour.

RGB JPEG goes to libjpeg-turbo through imagecodecs, straight from the array: the
same library and settings as Pillow, byte for byte (tested), in half the time, since
Pillow first copies every tile into its own 4-bytes-a-pixel image. Grey JPEG (whose
headers Pillow writes a little differently) and WebP go through Pillow; PNG through
:mod:`pyramidd.sinks.png`, which filters the whole tile in numpy and deflates it once
(Pillow's per-row adaptive filter made PNG encoding the largest part of an XYZ build).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import imagecodecs
import numpy as np

from ..errors import OptionError
from ..options import SUFFIXES, BuildOptions
from .png import encode_png

#: zlib level of PNG tiles; ``options.extra["png_compress_level"]`` overrides. vips
#: pngsave uses level 6 without row filters. Noise-like tiles are deflated with zlib's
#: run-length strategy whatever the level (see :mod:`pyramidd.sinks.png`), so the level
#: matters for flat and smooth tiles, where 1 is fast and files are a few KiB anyway.
PNG_COMPRESS_LEVEL = 1

#: vips jpegsave turns chroma subsampling off from this quality up ("auto" mode).
JPEG_FULL_CHROMA_QUALITY = 90

_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def luminance(rgb: tuple[int, ...]) -> int:
    """Grey value of an RGB colour, with the ITU-R 601 weights Pillow's ``L`` uses."""
    r, g, b = rgb[:3]
    return (r * 299 + g * 587 + b * 114 + 500) // 1000


def flatten(pixels: np.ndarray, background: tuple[int, ...]) -> np.ndarray:
    """Composite LA or RGBA ``pixels`` over an opaque ``background``; returns L or RGB.

    ``(c*a + bg*(255-a) + 127) // 255`` per channel: the weights sum to 255, so the
    products fit uint16 and no float pass is needed.
    """
    colour = pixels[..., :-1].astype(np.uint16)
    alpha = pixels[..., -1:].astype(np.uint16)
    if colour.shape[-1] == 1:
        bg = np.array([luminance(background)], np.uint16)
    else:
        bg = np.array(background[:3], np.uint16)
    out = colour * alpha + bg * (255 - alpha) + 127
    out //= 255
    return out.astype(np.uint8)


def _rgb_rows(pixels: np.ndarray) -> bool:
    """RGB bytes whose rows each lie in one run of memory (rows may be apart)."""
    return (pixels.ndim == 3 and pixels.shape[2] == 3 and pixels.dtype == np.uint8
            and pixels.strides[1:] == (3, 1))


@dataclass(frozen=True)
class TileEncoder:
    """How the tiles of one build become bytes. Plain data: pickled to render workers.

    ``format`` is the Pillow format name (``JPEG``, ``PNG``, ``WEBP``); ``suffix`` the
    file extension without a dot, as the user gave it (``jpg``, ``jpeg``, ...).
    ``alpha`` asks PNG and WebP tiles to always carry an alpha band (see the module
    docstring); it has no effect on JPEG.
    """

    suffix: str = "jpg"
    format: str = "JPEG"
    quality: int = 75
    background: tuple[int, int, int, int] = (255, 255, 255, 255)
    alpha: bool = False
    lossless: bool = False
    compress_level: int = PNG_COMPRESS_LEVEL

    @classmethod
    def from_options(cls, options: BuildOptions, *, alpha: bool = False) -> TileEncoder:
        """The encoder for ``options``: suffix, quality, background and ``extra`` keys.

        ``extra["lossless"]`` (WebP) and ``extra["png_compress_level"]`` (0-9) are read
        here. Raises :class:`OptionError` for an unknown suffix or level.
        """
        suffix = options.suffix.lower().lstrip(".")
        if suffix not in SUFFIXES:
            raise OptionError(
                f"--suffix must be one of {', '.join(SUFFIXES)}, got {options.suffix!r}"
            )
        level = options.extra.get("png_compress_level", PNG_COMPRESS_LEVEL)
        if not isinstance(level, int) or not 0 <= level <= 9:
            raise OptionError(f"png_compress_level must be 0 to 9, got {level!r}")
        return cls(
            suffix=suffix,
            format=SUFFIXES[suffix],
            quality=options.quality,
            background=tuple(options.background),  # type: ignore[arg-type]
            alpha=alpha,
            lossless=bool(options.extra.get("lossless", False)),
            compress_level=level,
        )

    @property
    def mime_type(self) -> str:
        """The tile files' MIME type (``image/jpeg``, ``image/png``, ``image/webp``)."""
        return "image/" + self.format.lower()

    def out_bands(self, bands: int) -> int:
        """Bands of the encoded tile for an input of ``bands`` bands."""
        if bands not in _MODES:
            raise ValueError(f"tiles have 1 to 4 bands, got {bands}")
        if self.format == "JPEG":
            return 1 if bands <= 2 else 3
        if self.format == "WEBP":
            return 4 if (self.alpha or bands in (2, 4)) else 3
        if self.alpha and bands in (1, 3):
            return bands + 1
        return bands

    def prepare(
        self,
        pixels: np.ndarray,
        size: tuple[int, int] | None = None,
        *,
        at_bottom: bool = False,
    ) -> np.ndarray:
        """Pixels as they will be encoded: bands converted, padded to ``size``.

        ``size`` is ``(width, height)`` of the padded tile, ``None`` for no padding.
        The data sits at the top-left, or the bottom-left with ``at_bottom`` (TMS).
        Returns a C-contiguous ``(H, W, out_bands)`` array (maybe ``pixels`` itself).
        """
        if pixels.ndim == 2:
            pixels = pixels[:, :, None]
        h, w, bands = pixels.shape
        ob = self.out_bands(bands)
        width, height = size if size is not None else (w, h)
        if width < w or height < h:
            raise ValueError(f"cannot pad a {w}x{h} tile to {width}x{height}")
        padded = (width, height) != (w, h)
        if ob == bands and not padded:
            # The common case (full tiles, no conversion) costs no copy at all.
            return np.ascontiguousarray(pixels)

        if self.format == "JPEG" and bands in (2, 4):
            pixels = flatten(pixels, self.background)
            bands = ob
            if not padded:
                return pixels
        out = np.empty((height, width, ob), np.uint8)
        if padded:
            if ob in (2, 4):
                out[...] = 0  # transparent black: what gdal2tiles writes, and packs best
            elif ob == 1:
                out[...] = luminance(self.background)
            else:
                out[...] = self.background[:3]
        y0 = height - h if at_bottom else 0
        region = out[y0 : y0 + h, :w]
        colour = bands - 1 if bands in (2, 4) else bands
        out_colour = ob - 1 if ob in (2, 4) else ob
        # Colour bands: copied, or a grey band spread to RGB (WebP has no grey mode).
        region[..., :out_colour] = pixels[..., :colour]
        if ob in (2, 4):
            region[..., -1] = pixels[..., -1] if bands in (2, 4) else 255
        return out

    def params(self) -> dict[str, Any]:
        """Keyword arguments for Pillow's ``Image.save`` (JPEG and WebP; PNG is not Pillow's)."""
        if self.format == "JPEG":
            subsampling = 0 if self.quality >= JPEG_FULL_CHROMA_QUALITY else 2
            return {"format": "JPEG", "quality": self.quality, "subsampling": subsampling}
        if self.format == "PNG":
            raise ValueError("PNG tiles are written by pyramidd.sinks.png, not by Pillow")
        return {"format": "WEBP", "quality": self.quality, "lossless": self.lossless}

    def encode(
        self,
        pixels: np.ndarray,
        size: tuple[int, int] | None = None,
        *,
        at_bottom: bool = False,
    ) -> bytes:
        """The tile file's bytes; ``size`` and ``at_bottom`` as for :meth:`prepare`."""
        if self.format == "JPEG" and _rgb_rows(pixels) and size in (None, pixels.shape[1::-1]):
            # libjpeg reads the tile through a pointer per row: a crop of a larger region
            # (or a flipped one) goes in as it lies, without the copy prepare() makes.
            arr = pixels
        else:
            arr = self.prepare(pixels, size, at_bottom=at_bottom)
        if self.format == "PNG":
            return encode_png(arr, self.compress_level)
        if self.format == "JPEG" and arr.shape[2] == 3:
            full = self.quality >= JPEG_FULL_CHROMA_QUALITY
            return bytes(imagecodecs.jpeg8_encode(
                arr, level=self.quality, subsampling="444" if full else "420"))
        # Pillow only for grey JPEG and WebP, imported when first needed: every worker and
        # coordinator imports this module, and RGB JPEG and PNG builds never call it.
        from PIL import Image

        if arr.shape[2] == 1:
            arr = arr[:, :, 0]
        image = Image.fromarray(arr)
        buf = io.BytesIO()
        image.save(buf, **self.params())
        return buf.getvalue()
