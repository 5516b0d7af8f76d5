"""pyramidd plugin: whole-slide images (digital pathology) read through OpenSlide.

Recognises the slide formats OpenSlide reads by vendor — Aperio ``.svs``, Hamamatsu
``.ndpi``/``.vms``, MIRAX ``.mrxs``, Leica ``.scn``, Philips TIFF, Sakura, Trestle,
Ventana ``.bif``, Zeiss ``.czi``, DICOM — and reads full-resolution regions of level 0
as render workers ask for them; the slide is never decoded whole. Plain tiled TIFFs are
left to pyramidd's own TIFF source unless the build option ``openslide_generic_tiff``
is true.
"""

from __future__ import annotations

from pyramidd.hookspecs import hookimpl
from pyramidd.plugins import Registry

from .source import SlideFormat, SlideReader, SlideSource

__all__ = ["SlideFormat", "SlideReader", "SlideSource", "pyramidd_register"]
__version__ = "0.1.0"


@hookimpl
def pyramidd_register(registry: Registry) -> None:
    """Add the ``openslide`` source."""
    registry.add_source(SlideFormat())
