"""Mode conversion: how every built-in source turns its samples into 8-bit bands.

The engine works on 8-bit L, LA, RGB or RGBA only. The Pillow, TIFF and ``.npy``
sources describe what they read with a :class:`Conversion` and apply the same rule:

- **L, LA, RGB, RGBA at 8 bits** pass through unchanged.
- **1-bit** (bilevel) becomes L: 0 → 0, 1 → 255. 2- and 4-bit grey is stretched the
  same way (``v * 255 // (2**bits - 1)``, exact at both ends).
- **White-is-zero grey** (TIFF ``MinIsWhite``) is inverted so that 0 is black.
- **Palette** becomes RGB, or RGBA when the palette has transparency.
- **Colour-key transparency** (a PNG's ``tRNS`` for grey or RGB) adds an alpha band:
  0 where the raw samples equal the key, 255 elsewhere.
- **CMYK, YCbCr and CIELab** become RGB (CMYK as Pillow converts it, YCbCr by the
  JFIF equations, CIELab through XYZ with a D65 white to sRGB; no colour management).
- **16-bit** samples (Pillow's ``I;16`` modes, 48/64-bit RGB(A) TIFF and PNG, uint16
  ``.npy``) become 8-bit by ``(v + 128) // 257``: the exact linear map, 0 → 0 and
  65535 → 255, rounded to nearest.
- **32-bit integer, floating point and anything else** are refused with an
  :class:`~pyramidd.errors.InputError` that lists what is supported (see
  :data:`SUPPORTED`).

Alpha is kept as the last band and converted with the same depth rule; it is never
premultiplied or inverted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError

#: What the built-in sources read, for error messages.
SUPPORTED = (
    "8-bit or 16-bit grey, grey+alpha, RGB, RGBA, CMYK, YCbCr or CIELab; "
    "1/2/4-bit grey; palette images"
)

#: Colour models a :class:`Conversion` knows, with the colour samples each has.
COLOUR_SAMPLES = {"grey": 1, "rgb": 3, "palette": 1, "cmyk": 4, "ycbcr": 3, "lab": 3}


def unsupported(name: str, what: str) -> InputError:
    """The error for an input whose pixel type no built-in source converts."""
    return InputError(
        f"{name}: {what} is not supported; convert it to one of: {SUPPORTED}"
    )


def scale16(values: np.ndarray) -> np.ndarray:
    """16-bit samples to 8 bits by ``(v + 128) // 257`` (0 → 0, 65535 → 255)."""
    # uint32 so that v + 128 cannot wrap; the quotient always fits a byte.
    return ((values.astype(np.uint32) + 128) // 257).astype(np.uint8)


def scale_bits(values: np.ndarray, bits: int) -> np.ndarray:
    """``bits``-deep samples (1, 2, 4, 8 or 16) to 8 bits."""
    if values.dtype == np.bool_:
        # astype, not view: Pillow's bool arrays hold 255 for True, numpy's hold 1.
        return values.astype(np.uint8) * np.uint8(255)
    if bits == 16:
        return scale16(values)
    if bits == 8:
        return values.astype(np.uint8, copy=False)
    # 255 is divisible by 1, 3 and 15, so the stretch is exact integer maths.
    return (values.astype(np.uint8) * np.uint8(255 // ((1 << bits) - 1))).astype(np.uint8)


def _muldiv255(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # Pillow's MULDIV255 rounding, so CMYK from any source matches Pillow's convert.
    t = a.astype(np.int32) * b + 128
    return ((t >> 8) + t) >> 8


def cmyk_to_rgb(cmyk: np.ndarray) -> np.ndarray:
    """``(..., 4)`` uint8 CMYK to ``(..., 3)`` RGB, as Pillow's ``convert("RGB")``."""
    nk = 255 - cmyk[..., 3:4].astype(np.int32)
    rgb = nk - _muldiv255(cmyk[..., :3], nk)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def ycbcr_to_rgb(ycc: np.ndarray) -> np.ndarray:
    """``(..., 3)`` uint8 YCbCr (JFIF, full range) to RGB."""
    y = ycc[..., 0].astype(np.float32)
    cb = ycc[..., 1].astype(np.float32) - 128.0
    cr = ycc[..., 2].astype(np.float32) - 128.0
    rgb = np.stack(
        [y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], axis=-1
    )
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def lab_to_rgb(lab: np.ndarray, signed_ab: bool) -> np.ndarray:
    """``(..., 3)`` uint8 CIELab to sRGB.

    L is scaled 0..255 → 0..100. ``signed_ab``: a and b are two's-complement bytes
    (TIFF ``CIELab``, Pillow's ``LAB``); otherwise they are offset by 128 (TIFF
    ``ICCLab``).
    """
    L = lab[..., 0].astype(np.float32) * (100.0 / 255.0)
    if signed_ab:
        a = lab[..., 1].view(np.int8).astype(np.float32)
        b = lab[..., 2].view(np.int8).astype(np.float32)
    else:
        a = lab[..., 1].astype(np.float32) - 128.0
        b = lab[..., 2].astype(np.float32) - 128.0
    fy = (L + 16.0) / 116.0
    fx = fy + a / 500.0
    fz = fy - b / 200.0

    def finv(t: np.ndarray) -> np.ndarray:
        return np.where(t > 6.0 / 29.0, t**3, 3 * (6.0 / 29.0) ** 2 * (t - 4.0 / 29.0))

    x = 0.95047 * finv(fx)
    y = 1.00000 * finv(fy)
    z = 1.08883 * finv(fz)
    r = 3.2406 * x - 1.5372 * y - 0.4986 * z
    g = -0.9689 * x + 1.8758 * y + 0.0415 * z
    bl = 0.0557 * x - 0.2040 * y + 1.0570 * z
    lin = np.clip(np.stack([r, g, bl], axis=-1), 0.0, 1.0)
    srgb = np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1 / 2.4) - 0.055)
    return np.rint(srgb * 255.0).astype(np.uint8)


@dataclass(frozen=True, eq=False)
class Conversion:
    """How the raw samples of one image become 8-bit L, LA, RGB or RGBA.

    Plain data (pickled to render workers with the source). ``apply`` takes the raw
    samples of a rectangle, ``(h, w)`` or ``(h, w, samples)``, and returns
    ``(h, w, bands)`` uint8; it returns its input (a view) when nothing changes.
    """

    #: One of :data:`COLOUR_SAMPLES`.
    colour: str
    #: Depth of the raw samples: 1, 2, 4, 8 or 16 (palette: of the indices).
    bits: int = 8
    #: One more sample after the colour samples is alpha (kept as the last band).
    alpha: bool = False
    #: Grey with 0 = white (TIFF MinIsWhite): inverted so that 0 is black.
    invert: bool = False
    #: ``(n, 3)`` or ``(n, 4)`` uint8 colours of a palette image, n = 2**bits.
    palette: np.ndarray | None = field(default=None, repr=False)
    #: CIELab a/b are two's-complement bytes (TIFF) rather than offset by 128.
    signed_ab: bool = False
    #: Raw grey or RGB samples of transparent pixels (a PNG's colour key): an alpha
    #: band is added, 0 for them and 255 for the rest.
    key: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.colour not in COLOUR_SAMPLES:
            raise ValueError(f"unknown colour model {self.colour!r}")
        if self.colour == "palette" and self.palette is None:
            raise ValueError("a palette conversion needs the palette")
        if self.key is not None and (
            self.colour not in ("grey", "rgb") or self.alpha
            or len(self.key) != COLOUR_SAMPLES[self.colour]
        ):
            raise ValueError(f"a colour key {self.key} for {self.colour} samples"
                             f"{' with alpha' if self.alpha else ''}")

    @property
    def samples(self) -> int:
        """Raw samples per pixel this conversion expects."""
        return COLOUR_SAMPLES[self.colour] + int(self.alpha)

    @property
    def bands(self) -> int:
        """Bands of the result: 1 (L), 2 (LA), 3 (RGB) or 4 (RGBA)."""
        alpha = self.alpha or self.key is not None
        if self.colour == "grey":
            return 1 + int(alpha)
        if self.colour == "palette":
            has_alpha = self.alpha or self.palette.shape[1] == 4  # type: ignore[union-attr]
            return 4 if has_alpha else 3
        return 4 if alpha else 3

    @property
    def identity(self) -> bool:
        """True when ``apply`` returns its input unchanged (8-bit L/LA/RGB/RGBA)."""
        return (self.colour in ("grey", "rgb") and self.bits == 8 and not self.invert
                and self.key is None)

    def apply(self, raw: np.ndarray) -> np.ndarray:
        """Convert ``(h, w[, samples])`` raw samples to ``(h, w, bands)`` uint8."""
        if raw.ndim == 2:
            raw = raw[:, :, None]
        if raw.shape[2] < self.samples:
            raise ValueError(f"expected {self.samples} samples, got {raw.shape[2]}")
        if raw.shape[2] > self.samples:
            raw = raw[:, :, : self.samples]
        if self.identity and raw.dtype == np.uint8:
            return raw
        if self.colour == "palette":
            return self._palette(raw)
        ncolour = COLOUR_SAMPLES[self.colour]
        if self.key is not None:  # compared before scaling: the key is in raw samples
            keyed = np.all(raw[:, :, :ncolour] == np.array(self.key), axis=2)
        samples = scale_bits(raw, self.bits)
        colour = samples[:, :, :ncolour]
        if self.colour == "grey":
            colour = 255 - colour if self.invert else colour
        elif self.colour == "cmyk":
            colour = cmyk_to_rgb(colour)
        elif self.colour == "ycbcr":
            colour = ycbcr_to_rgb(colour)
        elif self.colour == "lab":
            colour = lab_to_rgb(colour, self.signed_ab)
        if self.key is not None:
            alpha = np.where(keyed, np.uint8(0), np.uint8(255))[:, :, None]
            return np.concatenate([colour, alpha], axis=2)
        if not self.alpha:
            return np.ascontiguousarray(colour)
        return np.concatenate([colour, samples[:, :, ncolour:]], axis=2)

    def _palette(self, raw: np.ndarray) -> np.ndarray:
        assert self.palette is not None
        index = raw[:, :, 0]
        if index.dtype == np.bool_:
            index = index.astype(np.uint8)
        # The palette has an entry for every value the index depth allows, so a
        # corrupt index cannot fall off its end.
        rgb = self.palette[np.minimum(index, len(self.palette) - 1)]
        if not self.alpha:
            return rgb
        alpha = scale_bits(raw[:, :, 1:2], 8 if self.bits < 8 else self.bits)
        if rgb.shape[2] == 4:  # palette transparency and an alpha band: both apply
            alpha = _muldiv255(rgb[:, :, 3:4], alpha).astype(np.uint8)
        return np.concatenate([rgb[:, :, :3], alpha], axis=2)


def palette_table(colours: np.ndarray, bits: int) -> np.ndarray:
    """A palette padded (with black) or cut to the ``2**bits`` entries an index can name.

    ``colours`` is ``(n, 3)`` or ``(n, 4)`` uint8.
    """
    size = 1 << bits
    table = np.zeros((size, colours.shape[1]), np.uint8)
    if colours.shape[1] == 4:
        table[:, 3] = 255  # entries past the palette's end are opaque black
    n = min(size, len(colours))
    table[:n] = colours[:n]
    return table


def bands_name(bands: int) -> str:
    """``L``, ``LA``, ``RGB`` or ``RGBA`` for a band count."""
    return {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[bands]
