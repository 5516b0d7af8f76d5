"""The ``warp`` source format: an image with ground control points, rectified.

:class:`WarpFormat.probe` (coordinator) recognises an input that has GCPs: a
``IMAGE.points`` / ``IMAGE.aux.xml`` sidecar, a ``.vrt`` with a ``GCPList``, a
GeoTIFF with several tiepoints, or ``options.extra["warp"]["gcps"]`` (a GCP file,
or a list of GCPs). It fits the polynomial, logs every GCP's residual and the RMS, computes
the output grid and returns a :class:`WarpSource` whose pixels are the *output*
grid. Its :meth:`WarpSource.open` (render worker) opens the input and returns a
:class:`~.reader.WarpReader`.

``options.extra["warp"]`` keys (all optional): ``gcps``, ``order`` (1-3),
``resampler`` (``near``/``bilinear``/``cubic``), ``output_size`` ``(w, h)``,
``fill`` (``alpha``/``background``), ``cache_mb``, ``band_rows``,
``thrash_threshold``, ``thrash_window``, ``piece`` ``(cols, rows)``.
``options.extra["warp"] = False`` switches warping off (the input is then opened
as a plain image even if it has a sidecar).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

import structlog

from ..errors import ImageTooLarge, OptionError
from ..formats import Source
from ..options import SUFFIXES, BuildOptions
from .extent import OutputGrid, output_grid
from .format import FORMAT, WarpFormat
from .gcps import GCPError, GCPSet
from .inputs import InputHeader, open_pieces, read_header
from .model import Fit, PolynomialModel, fit, format_residuals
from .reader import WarpReader, WarpSettings, out_bands
from .sample import KERNELS

__all__ = ["FORMAT", "PreparedWarpSource", "WarpFormat", "WarpSource", "warp_source"]

log = structlog.get_logger("pyramidd.warp")

#: Names the command line and profiles may use for the kernels.
ALIASES = {"nearest": "near", "linear": "bilinear"}


@dataclass(frozen=True)
class WarpSource:
    """A warp: output grid, model and input, as plain data for the workers."""

    input_path: str
    header: InputHeader
    model: PolynomialModel
    grid: OutputGrid
    settings: WarpSettings
    fit: Fit
    gcp_origin: str
    width: int
    height: int
    bands: int

    def open(self) -> WarpReader:
        """Open the input and its cache. Runs in a render worker."""
        pieces = open_pieces(Path(self.input_path), self.header, self.settings.piece)
        return WarpReader(self.model, self.grid, pieces, self.settings)

    def report(self) -> str:
        """GCP residuals and RMS, as printed on the console."""
        return format_residuals(self.fit)


@dataclass(frozen=True)
class PreparedWarpSource(WarpSource):
    """A warp over an input source that must be prepared once per build."""

    def prepare(self) -> Source:
        """Prepare the input (e.g. decode it to shared memory) and warp the prepared one."""
        inner = self.header.source.prepare()
        return WarpSource(**{**self.__dict__, "header": replace(self.header, source=inner)})

    def release(self) -> None:
        """Release what the input's preparation holds."""
        self.header.source.release()


def default_fill(options: BuildOptions) -> str:
    """``background`` when the tiles cannot keep alpha (JPEG), else ``alpha``.

    JPEG tiles are flattened onto the background anyway. Warping straight onto it
    gives the same tiles up to rounding and halves the work of the build: three
    bands take the C box reduction instead of the alpha-weighted one, and no tile is
    flattened.
    """
    return "background" if SUFFIXES.get(options.suffix) == "JPEG" else "alpha"


def check_settings(opts: Mapping[str, Any], options: BuildOptions) -> None:
    """Raise :class:`OptionError` for warp options no build would accept."""
    try:
        _settings(opts, options)
    except (TypeError, ValueError) as exc:
        raise OptionError(f"bad warp option: {exc}") from None


def _settings(opts: Mapping[str, Any], options: BuildOptions) -> WarpSettings:
    kernel = str(opts.get("resampler") or "near")
    kernel = ALIASES.get(kernel, kernel)
    if kernel not in KERNELS:
        raise OptionError(f"--warp-resampler must be one of {', '.join(KERNELS)}, got {kernel!r}")
    fill = str(opts.get("fill") or default_fill(options))
    if fill not in ("alpha", "background"):
        raise OptionError(f"warp fill must be 'alpha' or 'background', got {fill!r}")
    cache_mb = float(opts.get("cache_mb") or WarpSettings.cache_bytes / (1 << 20))
    if cache_mb <= 0:
        raise OptionError(f"the warp cache must be positive, got {cache_mb} MB")
    piece = opts.get("piece")
    return WarpSettings(
        resampler=kernel,
        fill=fill,
        background=tuple(options.background),  # type: ignore[arg-type]
        cache_bytes=int(cache_mb * (1 << 20)),
        band_rows=int(opts.get("band_rows") or 0),
        thrash_window=int(opts.get("thrash_window") or 65536),
        thrash_threshold=float(opts.get("thrash_threshold") or 0.2),
        piece=(int(piece[0]), int(piece[1])) if piece else None,
    )


def warp_source(
    gset: GCPSet, raster: Path, opts: Mapping[str, Any], options: BuildOptions
) -> WarpSource:
    """The :class:`WarpSource` for ``raster`` warped through ``gset``: fits the model,
    logs every GCP's residual and lays out the output grid (:meth:`.format.WarpFormat.probe`
    calls it once it has found GCPs)."""
    order = opts.get("order")
    if order is not None and int(order) not in (1, 2, 3):
        raise OptionError(f"--order must be 1, 2 or 3, got {order}")
    settings = _settings(opts, options)
    header = read_header(raster, options)
    result = fit(gset.gcps, None if order is None else int(order))
    log.info(
        "warp.gcps", origin=gset.origin, input=str(raster), order=result.model.order,
        gcps=len(result.gcps), disabled=len(gset.gcps) - len(result.gcps),
        rms=round(result.rms, 4),
    )
    for g, r in zip(result.gcps, result.residuals):
        log.info("warp.residual", id=g.id, dx=round(r.dx, 4), dy=round(r.dy, 4),
                 distance=round(r.distance, 4))
    size = opts.get("output_size")
    if size is not None and (int(size[0]) < 1 or int(size[1]) < 1):
        raise OptionError(f"--output-size must be positive, got {size[0]}x{size[1]}")
    try:
        grid = output_grid(result.model, header.width, header.height,
                           None if size is None else (int(size[0]), int(size[1])))
    except ValueError as exc:
        raise GCPError(f"{gset.origin}: {exc}; check the GCPs") from None
    if grid.width * grid.height > options.max_pixels:
        raise ImageTooLarge(
            f"the warped image would be {grid.width}x{grid.height} pixels, over the limit of "
            f"{options.max_pixels}; give a smaller --output-size"
        )
    cls = PreparedWarpSource if hasattr(header.source, "prepare") else WarpSource
    return cls(
        input_path=str(raster),
        header=header,
        model=result.model,
        grid=grid,
        settings=settings,
        fit=result,
        gcp_origin=gset.origin,
        width=grid.width,
        height=grid.height,
        bands=out_bands(header.bands, settings.fill),
    )
