"""The whole-slide source: probe in the coordinator, region reads in workers."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pyramidd.errors import InputError
from pyramidd.options import BuildOptions

log = logging.getLogger(__name__)

#: Suffixes that are only ever slides: OpenSlide is always asked about these, and when
#: it cannot be loaded they fail with advice instead of falling through to
#: "unsupported input".
SLIDE_SUFFIXES = {".svs", ".ndpi", ".vms", ".vmu", ".mrxs", ".scn", ".bif", ".svslide", ".czi",
                  ".avs", ".mdsx", ".dcm"}
#: TIFF magic numbers, classic and BigTIFF, either byte order.
TIFF_MAGIC = (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")


def _openslide() -> Any:
    import openslide  # late: a missing C library must not break loading other plugins

    return openslide


@dataclass
class SlideSource:
    """A recognised slide: level-0 size and where it is. Pickled to workers."""

    path: Path
    width: int
    height: int
    vendor: str
    #: Colour behind transparent (unscanned) areas: the slide's own background colour
    #: when it names one, else the build's background.
    background: tuple[int, int, int]
    bands: int = 3
    properties: dict[str, str] = field(default_factory=dict)

    def open(self) -> "SlideReader":
        """Open the slide in this worker."""
        return SlideReader(self)


class SlideReader:
    """An open slide in one render worker."""

    def __init__(self, source: SlideSource) -> None:
        self._slide = _openslide().OpenSlide(str(source.path))
        self._background = np.array(source.background, np.uint32)

    def read_region(self, x: int, y: int, w: int, h: int) -> np.ndarray:
        """Level-0 pixels, RGB, composited over the background where nothing was scanned."""
        rgba = np.asarray(self._slide.read_region((x, y), 0, (w, h)))
        alpha = rgba[..., 3:4]
        if alpha.min() == 255:
            return rgba[..., :3]
        a = alpha.astype(np.uint32)
        rgb = rgba[..., :3].astype(np.uint32) * a + self._background * (255 - a)
        return ((rgb + 127) // 255).astype(np.uint8)

    def close(self) -> None:
        """Close the slide file."""
        self._slide.close()


class SlideFormat:
    """Whole-slide images (SVS, NDPI, MIRAX, SCN, ...) through OpenSlide."""

    name = "openslide"
    #: Asked before pyramidd's TIFF source, which would otherwise take SVS files (they
    #: are TIFFs) and miss their vendor metadata.
    priority = 50

    def probe(self, path: Path, options: BuildOptions) -> SlideSource | None:
        """A :class:`SlideSource` for a slide OpenSlide reads by vendor, else ``None``."""
        generic = bool(options.extra.get("openslide_generic_tiff"))
        if not generic and not may_be_slide(Path(path)):
            return None
        try:
            openslide = _openslide()
        except (ImportError, OSError) as exc:
            if Path(path).suffix.lower() in SLIDE_SUFFIXES:
                raise InputError(
                    f"{Path(path).name} is a whole-slide image but OpenSlide cannot be loaded"
                    f" ({exc}); install it with 'pip install openslide-bin'"
                ) from exc
            return None
        vendor = openslide.OpenSlide.detect_format(str(path))
        if vendor is None:
            return None
        if vendor == "generic-tiff" and not generic:
            return None
        try:
            slide = openslide.OpenSlide(str(path))
        except openslide.OpenSlideError as exc:
            raise InputError(
                f"{Path(path).name}: a {vendor} slide OpenSlide cannot read ({exc});"
                " check that the file (and for MIRAX/VMS its data folder) is complete"
            ) from exc
        try:
            width, height = slide.dimensions
            props = dict(slide.properties)
        finally:
            slide.close()
        return SlideSource(
            path=Path(path),
            width=width,
            height=height,
            vendor=vendor,
            background=_background(props, options),
            properties={k: v for k, v in props.items() if k.startswith("openslide.")},
        )


def may_be_slide(path: Path) -> bool:
    """Whether any of OpenSlide's vendor drivers could claim ``path``, judged from the
    signs they look for, without loading OpenSlide: loading it (and Pillow, which it
    imports) is 25-45 ms of every build's start, and most inputs are not slides.

    True for a slide suffix, a DICOM or Zeiss CZI file, and a TIFF whose first
    directory carries what identifies a vendor's TIFF: an ImageDescription starting
    with ``Aperio`` or holding XML (Leica, Philips), a Software tag of ``MedScan``
    (Trestle) or ``Philips``, a Make tag (Huron), XMP (Ventana) or a private tag
    numbered 65000 or more (ARGOS, Hamamatsu NDPI). When in doubt (a file this cannot
    read), OpenSlide is asked.
    """
    if path.suffix.lower() in SLIDE_SUFFIXES:
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return True  # OpenSlide's own error, or the next source's, says what is wrong
    if head[:4] in TIFF_MAGIC:
        return _tiff_may_be_slide(path)
    return head.startswith(b"ZISRAWFILE") or head[128:132] == b"DICM"


def _tiff_may_be_slide(path: Path) -> bool:
    from pyramidd.sources.tiffpage import first_page

    try:
        with first_page(path) as first:
            tags = first.page.tags
            codes = {tag.code for tag in tags.values()}
            description = _text(tags.valueof(270, ""))
            software = _text(tags.valueof(305, ""))
    except Exception:  # noqa: BLE001 - any failure to read: let OpenSlide judge
        return True
    return bool(
        codes & {271, 700}
        or max(codes, default=0) >= 65000
        or description.startswith("Aperio")
        or description.lstrip().startswith("<")
        or software.startswith(("MedScan", "Philips"))
    )


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value if isinstance(value, str) else ""


def _background(props: dict[str, str], options: BuildOptions) -> tuple[int, int, int]:
    colour = props.get("openslide.background-color")
    if colour and len(colour) == 6:
        try:
            return (int(colour[0:2], 16), int(colour[2:4], 16), int(colour[4:6], 16))
        except ValueError:
            log.warning("ignoring the slide's background colour %r", colour)
    r, g, b, _ = options.background
    return (r, g, b)
