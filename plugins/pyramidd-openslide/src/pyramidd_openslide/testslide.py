"""Small synthetic whole-slide images for tests, written with tifffile.

OpenSlide recognises an Aperio slide by the ``Aperio`` prefix of each page's
ImageDescription; a tiled, JPEG-compressed TIFF with such descriptions and a
downsampled second page is a valid (if tiny) SVS.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_aperio_svs(path: Path, image: np.ndarray, *, tile: int = 128, quality: int = 95,
                     mpp: float = 0.5, compression: str = "jpeg") -> Path:
    """Write ``image`` (``(h, w, 3)`` uint8) as an Aperio SVS with two levels.

    ``compression`` is ``"jpeg"`` (as scanners write them) or ``"zlib"``, lossless, for
    tests that compare pixels exactly.
    """
    import tifffile

    codec = {"compression": "jpeg", "compressionargs": {"level": quality}}
    if compression != "jpeg":
        codec = {"compression": compression}

    h, w = image.shape[:2]
    desc = (
        f"Aperio Image Library v10.0.0\n{w}x{h} [0,0 {w}x{h}] ({tile}x{tile}) JPEG/RGB"
        f" Q={quality}|AppMag = 20|MPP = {mpp}"
    )
    with tifffile.TiffWriter(path) as tw:
        tw.write(image, tile=(tile, tile), photometric="rgb", **codec,
                 description=desc, metadata=None)
        small = np.ascontiguousarray(image[::2, ::2])
        tw.write(small, tile=(tile, tile), photometric="rgb", **codec,
                 description=f"Aperio Image Library v10.0.0\n{w}x{h} -> {w // 2}x{h // 2}",
                 metadata=None)
    return Path(path)
