"""pytest plugin shipped with pyramidd, for plugin authors (loaded through ``pytest11``).

Installing pyramidd makes these fixtures available in any test suite::

    def test_my_sink_builds(build_pyramid):
        built = build_pyramid(layout="mbtiles", width=300, height=200)
        assert built.output.exists()

Fixtures:

- :func:`make_image` writes a generated image (a deterministic gradient with texture)
  into ``tmp_path`` and returns its path.
- :func:`build_pyramid` runs the real engine (``pyramidd.engine.build_sync``) on a
  generated or given input and returns a :class:`BuiltPyramid`.
- :func:`run_sink` drives a sink format in this process, without the engine or worker
  processes: it cuts the reference pyramid of an array into tiles and feeds them to
  ``start`` / ``write_tile`` / ``finish``. The quickest test of a new sink.
- :func:`pyramidd_registry` is the registry of formats every installed plugin added.

Plain helpers usable outside fixtures: :func:`gradient`, :func:`reference_levels`,
:func:`reference_tile`, :func:`check_dzi`, :func:`check_zxy`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pytest

from .formats import LayoutRules, Resampler, Sink, SinkFormat, Source
from .grid import Grid, TileKey
from .options import BuildOptions

# --------------------------------------------------------------------------- images


def gradient(width: int, height: int, bands: int = 3) -> np.ndarray:
    """A deterministic ``(height, width, bands)`` uint8 test image.

    Red grows to the right, green downwards, blue is a fine checker, so a tile in the
    wrong place, a flipped row order or a swapped band shows up in any comparison.
    Alpha (bands 2 and 4) is opaque on the left half and half transparent on the right.
    """
    if bands not in (1, 2, 3, 4):
        raise ValueError("bands must be 1, 2, 3 or 4")
    yy, xx = np.mgrid[0:height, 0:width]
    red = (xx * 255) // max(width - 1, 1)
    green = (yy * 255) // max(height - 1, 1)
    blue = np.where(((xx // 8) + (yy // 8)) % 2 == 0, 40, 215)
    alpha = np.where(xx < width // 2, 255, 128)
    if bands == 1:
        planes = [(red + green) // 2]
    elif bands == 2:
        planes = [(red + green) // 2, alpha]
    else:
        planes = [red, green, blue] + ([alpha] if bands == 4 else [])
    return np.stack(planes, axis=-1).astype(np.uint8)


_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def write_image(path: Path, pixels: np.ndarray) -> Path:
    """Write ``pixels`` to ``path`` in the format its suffix names (``.npy``, ``.tif``, or
    anything Pillow writes, losslessly where the format allows)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        np.save(path, pixels)
    elif suffix in (".tif", ".tiff"):
        import tifffile

        tile = (64, 64) if min(pixels.shape[:2]) >= 64 else None
        tifffile.imwrite(path, pixels, tile=tile, photometric=_photometric(pixels))
    else:
        from PIL import Image

        Image.fromarray(np.squeeze(pixels, -1) if pixels.shape[-1] == 1 else pixels,
                        _MODES[pixels.shape[-1]]).save(path)
    return path


def _photometric(pixels: np.ndarray) -> str:
    return "minisblack" if pixels.shape[-1] <= 2 else "rgb"


# --------------------------------------------------------------------------- reference


def reference_levels(
    image: np.ndarray, grid: Grid, resampler: Resampler | None = None
) -> dict[int, np.ndarray]:
    """Every level of ``grid`` as one array, made the plain way: the whole image in
    memory, halved level by level with ``resampler`` (default: the 2x2 box mean rounded
    as ``(a+b+c+d+2)//4``), pixels past the edge copied from the edge.

    This is the oracle the engine is held to; a sink test compares what it stored with
    :func:`reference_tile`.
    """
    if resampler is None:
        from .resamplers import Box

        resampler = Box()
    levels = {grid.top: image}
    current = image
    for level in range(grid.top - 1, grid.min_level - 1, -1):
        w, h = grid.level_size(level)
        s = resampler.support
        # Pad to exactly 2w x 2h plus the filter's margin on every side, by edge copies.
        pad_bottom = 2 * h - current.shape[0] + s
        pad_right = 2 * w - current.shape[1] + s
        block = np.pad(current, ((s, pad_bottom), (s, pad_right), (0, 0)), mode="edge")
        current = resampler.reduce(block)
        levels[level] = current
    return levels


def reference_tile(levels: dict[int, np.ndarray], grid: Grid, key: TileKey) -> np.ndarray:
    """The pixels of one tile cut from :func:`reference_levels`."""
    x0, y0, x1, y1 = grid.tile_rect(key)
    return levels[key.level][y0:y1, x0:x1]


# --------------------------------------------------------------------------- structure


def check_dzi(descriptor: Path) -> Grid:
    """Check a Deep Zoom pyramid's file tree against its ``.dzi`` descriptor.

    Every tile of every level exists with the size the grid says, and there are no
    extra files. Returns the grid. Raises ``AssertionError`` saying what is wrong.
    """
    from PIL import Image

    root = ET.parse(descriptor).getroot()
    ns = root.tag.split("}")[0] + "}" if root.tag.startswith("{") else ""
    size = root.find(f"{ns}Size")
    assert size is not None, f"{descriptor}: no <Size> element"
    grid = Grid(
        int(size.get("Width")), int(size.get("Height")),  # type: ignore[arg-type]
        int(root.get("TileSize")), int(root.get("Overlap")),  # type: ignore[arg-type]
    )
    fmt = root.get("Format")
    files = descriptor.with_name(descriptor.stem + "_files")
    expected = set()
    for level in grid.levels():
        for key in grid.keys(level):
            expected.add(files / str(level) / f"{key.col}_{key.row}.{fmt}")
    found = {p for p in files.rglob("*") if p.is_file()}
    assert found == expected, (
        f"{files}: missing {sorted(map(str, expected - found))[:5]},"
        f" extra {sorted(map(str, found - expected))[:5]}"
    )
    for level in grid.levels():
        for key in grid.keys(level):
            x0, y0, x1, y1 = grid.tile_rect(key)
            with Image.open(files / str(level) / f"{key.col}_{key.row}.{fmt}") as im:
                assert im.size == (x1 - x0, y1 - y0), f"tile {key}: size {im.size}"
    return grid


def check_zxy(root: Path, grid: Grid, suffix: str, *, full_tiles: bool = True) -> None:
    """Check a ``z/x/y.ext`` tree (TMS or XYZ) holds exactly the tiles of ``grid``
    (whose ``depth`` must be ``"onetile"``), zoom 0 being ``grid.min_level``.

    ``full_tiles``: every tile is ``tile_size`` square (edge tiles padded), as XYZ and
    gdal2tiles write them.
    """
    from PIL import Image

    expected = set()
    for level in grid.levels():
        z = level - grid.min_level
        for key in grid.keys(level):
            expected.add(root / str(z) / str(key.col) / f"{key.row}.{suffix}")
    found = {p for p in root.rglob(f"*.{suffix}") if p.is_file()}
    assert found == expected, (
        f"{root}: missing {sorted(map(str, expected - found))[:5]},"
        f" extra {sorted(map(str, found - expected))[:5]}"
    )
    if full_tiles:
        for path in sorted(expected)[:50]:
            with Image.open(path) as im:
                assert im.size == (grid.tile_size, grid.tile_size), f"{path}: size {im.size}"


# --------------------------------------------------------------------------- fixtures


@dataclass
class BuiltPyramid:
    """What :func:`build_pyramid` made."""

    input: Path
    output: Path
    options: BuildOptions
    #: The ``BuildSummary`` the engine returned.
    summary: Any
    #: The generated image, when the fixture made the input.
    image: np.ndarray | None = None

    def files(self) -> list[Path]:
        """Every file written, relative to the output's folder, sorted."""
        base = self.output.parent
        return sorted(p.relative_to(base) for p in base.rglob("*") if p.is_file()
                      and p != self.input)


@pytest.fixture
def make_image(tmp_path: Path) -> Callable[..., Path]:
    """``make_image(width=300, height=200, bands=3, suffix=".png", name="input")``:
    write :func:`gradient` to ``tmp_path`` and return the path."""

    def make(
        width: int = 300, height: int = 200, bands: int = 3, suffix: str = ".png",
        name: str = "input",
    ) -> Path:
        return write_image(tmp_path / f"{name}{suffix}", gradient(width, height, bands))

    return make


@pytest.fixture
def build_pyramid(tmp_path: Path) -> Callable[..., BuiltPyramid]:
    """``build_pyramid(input=None, output=None, *, width=300, height=200, bands=3,
    **options)``: build a pyramid with the real engine, in this test's ``tmp_path``.

    Without ``input`` a :func:`gradient` PNG of the given size is generated. Keyword
    arguments are :class:`~pyramidd.options.BuildOptions` fields (``layout``,
    ``tile_size``, ``suffix``, ...); unknown ones go to ``options.extra``. Workers
    default to 1 to keep tests light.
    """

    def build(
        input: Path | None = None, output: Path | None = None, *, width: int = 300,
        height: int = 200, bands: int = 3, **kwargs: Any,
    ) -> BuiltPyramid:
        from . import engine  # imported late: a sink test with run_sink needs no engine

        image = None
        if input is None:
            image = gradient(width, height, bands)
            input = write_image(tmp_path / "input.png", image)
        known = {f.name for f in BuildOptions.__dataclass_fields__.values()}
        extra = {k: kwargs.pop(k) for k in list(kwargs) if k not in known}
        kwargs.setdefault("workers", 1)
        options = BuildOptions(**kwargs, extra={**kwargs.pop("extra", {}), **extra})
        if output is None:
            output = tmp_path / "out" / "pyramid"
            output.parent.mkdir(exist_ok=True)
        summary = engine.build_sync(input, output, options)
        return BuiltPyramid(Path(input), Path(output), options, summary, image)

    return build


@dataclass
class SinkRun:
    """What :func:`run_sink` fed to a sink."""

    sink: Sink
    grid: Grid
    rules: LayoutRules
    options: BuildOptions
    #: The reference levels, in the layout's row direction (as the tiles were written).
    levels: dict[int, np.ndarray]
    keys: list[TileKey] = field(default_factory=list)
    bytes_written: int = 0

    def tile(self, key: TileKey) -> np.ndarray:
        """The pixels written for ``key``."""
        if self.rules.flip_y:
            return reference_tile(self.levels, self.grid, key)[::-1]
        return reference_tile(self.levels, self.grid, key)


@dataclass
class ArraySource:
    """A :class:`~pyramidd.formats.Source` over an in-memory array, for tests."""

    pixels: np.ndarray
    width: int = 0
    height: int = 0
    bands: int = 0

    def __post_init__(self) -> None:
        self.height, self.width, self.bands = self.pixels.shape

    def open(self) -> "ArraySource":
        """The array is its own region reader."""
        return self

    def read_region(self, x: int, y: int, w: int, h: int) -> np.ndarray:
        """A view of the array."""
        return self.pixels[y : y + h, x : x + w]

    def close(self) -> None:
        """Nothing to release."""


def drive_sink(
    sink_format: SinkFormat, image: np.ndarray, output: Path, options: BuildOptions | None = None
) -> SinkRun:
    """Feed every tile of ``image``'s reference pyramid to a sink made by
    ``sink_format``, in this process: ``start``, ``write_tile`` for each tile (top level
    first, each level row by row), then ``finish``. ``abort`` is called if anything
    raises. No engine, no workers."""
    options = options or BuildOptions(layout=sink_format.name)
    rules = sink_format.rules(options)
    height, width = image.shape[:2]
    grid = Grid(width, height, rules.tile_size, rules.overlap, rules.depth)
    # A flip_y layout's grid is anchored at the bottom: the engine builds the pyramid of
    # the flipped image, and hands each tile back upright.
    levels = reference_levels(image[::-1] if rules.flip_y else image, grid)
    sink = sink_format.create(output, grid, ArraySource(image), options)
    run = SinkRun(sink, grid, rules, options, levels)
    sink.start()
    try:
        for level in reversed(grid.levels()):
            for key in grid.keys(level):
                run.bytes_written += sink.write_tile(key, np.ascontiguousarray(run.tile(key)))
                run.keys.append(key)
        sink.finish()
    except BaseException:
        sink.abort()
        raise
    return run


@pytest.fixture
def run_sink(tmp_path: Path) -> Callable[..., SinkRun]:
    """``run_sink(sink_format, image=None, output=None, **options)``: drive a sink in
    this process with the reference pyramid of ``image`` (default: a 300x200 RGB
    :func:`gradient`); see :func:`drive_sink`. Options as in :func:`build_pyramid`."""

    def run(
        sink_format: SinkFormat, image: np.ndarray | None = None, output: Path | None = None,
        **kwargs: Any,
    ) -> SinkRun:
        known = {f.name for f in BuildOptions.__dataclass_fields__.values()}
        extra = {k: kwargs.pop(k) for k in list(kwargs) if k not in known}
        kwargs.setdefault("layout", sink_format.name)
        options = BuildOptions(**kwargs, extra=extra)
        image = gradient(300, 200, 3) if image is None else image
        return drive_sink(sink_format, image, output or tmp_path / "pyramid", options)

    return run


def read_source(source: Source, tile: int = 128) -> np.ndarray:
    """Read a whole :class:`~pyramidd.formats.Source` region by region (as workers do,
    ``tile`` pixels at a time) into one array; checks every region's shape and dtype."""
    reader = source.open()
    try:
        out = np.zeros((source.height, source.width, source.bands), np.uint8)
        for y in range(0, source.height, tile):
            for x in range(0, source.width, tile):
                w, h = min(tile, source.width - x), min(tile, source.height - y)
                region = reader.read_region(x, y, w, h)
                assert region.dtype == np.uint8, f"region at {x},{y}: dtype {region.dtype}"
                assert region.shape == (h, w, source.bands), (
                    f"region at {x},{y}: shape {region.shape}, expected {(h, w, source.bands)}"
                )
                out[y : y + h, x : x + w] = region
        return out
    finally:
        reader.close()


@pytest.fixture
def pyramidd_registry() -> Iterator[Any]:
    """The :class:`~pyramidd.plugins.Registry` filled by every installed plugin."""
    from .plugins import load

    yield load().registry


__all__ = [
    "ArraySource", "BuiltPyramid", "SinkRun", "build_pyramid", "check_dzi", "check_zxy",
    "drive_sink", "gradient", "make_image", "pyramidd_registry", "read_source",
    "reference_levels", "reference_tile", "run_sink", "write_image",
]
