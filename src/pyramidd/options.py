"""Options of one pyramid build, as plain data that crosses process boundaries."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import OptionError

#: Tile formats the built-in sinks encode, and the Pillow format name of each.
SUFFIXES = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}


def parse_colour(text: str) -> tuple[int, int, int, int]:
    """Parse ``#rgb``, ``#rgba``, ``#rrggbb``, ``#rrggbbaa``, ``r,g,b[,a]`` or a name
    Pillow knows (``white``, ``rgb(...)``, ``hsl(...)``, ...)."""
    text = text.strip()
    try:
        if "," in text and "(" not in text:
            parts = [int(p) for p in text.split(",")]
            if len(parts) not in (3, 4) or not all(0 <= p <= 255 for p in parts):
                raise ValueError
            return tuple(parts + [255] * (4 - len(parts)))  # type: ignore[return-value]
        if text.lower() in _NAMED:
            return _NAMED[text.lower()]
        digits = text[1:]
        if text.startswith("#") and len(digits) in (3, 4, 6, 8) and set(digits) <= _HEX:
            if len(digits) < 6:
                digits = "".join(d + d for d in digits)
            values = [int(digits[i:i + 2], 16) for i in range(0, len(digits), 2)]
            return tuple(values + [255] * (4 - len(values)))  # type: ignore[return-value]
        # Pillow only for the rest: importing it is 10-20 ms of every build's start.
        from PIL import ImageColor

        rgba = ImageColor.getrgb(text)
    except ValueError:
        raise OptionError(
            f"--background {text!r} is not a colour: use #rrggbb, r,g,b or a colour name"
        ) from None
    return tuple(rgba) + (255,) * (4 - len(rgba))  # type: ignore[return-value]


#: The defaults of ``--background`` and the service's profiles, parsed without Pillow.
_NAMED = {"white": (255, 255, 255, 255), "black": (0, 0, 0, 255)}
_HEX = frozenset("0123456789abcdefABCDEF")


@dataclass(frozen=True)
class BuildOptions:
    """Everything that decides what a build writes. Defaults follow ``vips dzsave``."""

    layout: str = "dzi"
    tile_size: int | None = None  # None: the layout's default (254 for DZI, 256 otherwise)
    overlap: int | None = None  # None: the layout's default (1 for DZI, 0 otherwise)
    suffix: str = "jpg"
    quality: int = 75  # as vips jpegsave
    resampler: str = "box"
    background: tuple[int, int, int, int] = (255, 255, 255, 255)
    workers: int = 0  # 0: one per CPU
    max_pixels: int = 1 << 32
    extra: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        """Raise :class:`OptionError` for values no layout accepts."""
        if self.tile_size is not None and not 1 <= self.tile_size <= 8192:
            raise OptionError(f"--tile-size must be between 1 and 8192, got {self.tile_size}")
        if self.overlap is not None and self.overlap < 0:
            raise OptionError(f"--overlap must be 0 or more, got {self.overlap}")
        if (
            self.tile_size is not None
            and self.overlap is not None
            and self.overlap >= self.tile_size
        ):
            raise OptionError(
                f"--overlap {self.overlap} must be less than --tile-size {self.tile_size}"
            )
        if self.suffix not in SUFFIXES:
            raise OptionError(f"--suffix must be one of {', '.join(SUFFIXES)}, got {self.suffix!r}")
        if not 1 <= self.quality <= 100:
            raise OptionError(f"--quality must be between 1 and 100, got {self.quality}")
        if self.workers < 0:
            raise OptionError(f"--workers must be 0 (one per CPU) or more, got {self.workers}")
        if self.max_pixels < 1:
            raise OptionError("the pixel limit must be positive")
