"""The warp source format: recognising inputs with GCPs, options, errors, pickling, a build."""

from __future__ import annotations

import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import structlog
import tifffile
from PIL import Image

from pyramidd import plugins
from pyramidd.engine import build_sync
from pyramidd.errors import ImageTooLarge, InputError, OptionError
from pyramidd.options import BuildOptions
from pyramidd.warp.gcps import GCPError
from pyramidd.warp.reader import FALLBACK_NOTICE
from pyramidd.warp.source import FORMAT, PreparedWarpSource, WarpSource

W, H = 120, 80
IMG = np.random.default_rng(3).integers(0, 256, (H, W, 3), dtype=np.uint8)
#: A 30° rotation at 2 map units per pixel, 5 GCPs (order 1 by default).
POINTS = [
    (px, ln, 1000 + 2 * (px * 0.8660254 - ln * 0.5), 5000 - 2 * (px * 0.5 + ln * 0.8660254))
    for px, ln in [(0, 0), (W, 0), (0, H), (W, H), (40, 30)]
]


def write_points(path: Path, points=POINTS, enabled=None) -> None:  # type: ignore[no-untyped-def]
    rows = ["mapX,mapY,sourceX,sourceY,enable,dX,dY,residual"]
    for n, (p, ln, x, y) in enumerate(points):
        on = 1 if enabled is None else enabled[n]
        rows.append(f"{x},{y},{p},{-ln},{on},0,0,0")
    path.write_text("\n".join(rows) + "\n")


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "scan.tif"
    tifffile.imwrite(path, IMG)
    return path


def probe(path: Path, suffix: str = "png", **warp):  # type: ignore[no-untyped-def]
    extra = {"warp": warp} if warp else {}
    return plugins.load().registry.probe(path, BuildOptions(suffix=suffix, extra=extra))


def test_registered_above_the_plain_readers() -> None:
    sources = plugins.load().registry.of_kind("source")
    warp = next(e.obj for e in sources if e.name == "warp")
    assert warp is FORMAT
    assert all(warp.priority > getattr(e.obj, "priority", 0) for e in sources if e.name != "warp")


def test_an_image_without_gcps_is_not_warped(image: Path) -> None:
    assert not isinstance(probe(image), WarpSource)


def test_a_points_sidecar_makes_a_warp_with_alpha(image: Path) -> None:
    write_points(image.with_name("scan.tif.points"))
    with structlog.testing.capture_logs() as logs:
        source = probe(image)
    assert isinstance(source, WarpSource)
    assert source.bands == 4 and source.model.order == 1
    # The output covers the rotated image at about input resolution.
    assert abs(source.width * source.height - (W * H) * 1.3) < 0.5 * W * H
    events = [e["event"] for e in logs]
    assert events.count("warp.residual") == 5 and "warp.gcps" in events
    assert "RMS" in source.report()


def test_jpeg_tiles_are_warped_onto_the_background_unless_alpha_is_asked_for(image: Path) -> None:
    # JPEG keeps no alpha: the tiles would be flattened onto the background anyway
    write_points(image.with_name("scan.tif.points"))
    source = probe(image, suffix="jpg")
    assert source.bands == 3 and source.settings.fill == "background"
    corner = source.open().read_region(0, 0, 1, 1)
    assert corner.tolist() == [[[255, 255, 255]]]  # outside the input: the background
    assert probe(image, suffix="jpg", fill="alpha").bands == 4
    assert probe(image, suffix="webp").bands == 4


def test_warp_false_opens_the_plain_image(image: Path) -> None:
    write_points(image.with_name("scan.tif.points"))
    plain = plugins.load().registry.probe(image, BuildOptions(extra={"warp": False}))
    assert not isinstance(plain, WarpSource) and plain.width == W


def test_gcps_option_output_size_and_resampler(image: Path, tmp_path: Path) -> None:
    write_points(tmp_path / "elsewhere.points")
    source = probe(image, gcps=str(tmp_path / "elsewhere.points"), output_size=(50, 40),
                   resampler="bilinear", order=1)
    assert (source.width, source.height) == (50, 40)
    assert source.settings.resampler == "bilinear"
    inline = probe(image, gcps=[list(p) for p in POINTS])
    assert isinstance(inline, WarpSource)


def test_source_survives_pickling_and_opens_from_the_copy(image: Path) -> None:
    write_points(image.with_name("scan.tif.points"))
    source = probe(image)
    again = pickle.loads(pickle.dumps(source))
    assert (again.model, again.grid, again.settings) == (source.model, source.grid, source.settings)
    reader = again.open()
    tile = reader.read_region(10, 10, 30, 20)
    assert tile.shape == (20, 30, 4)
    assert reader.counters.piece_reads >= 1
    reader.close()


def test_a_png_input_is_prepared_once(tmp_path: Path) -> None:
    path = tmp_path / "scan.png"
    Image.fromarray(IMG).save(path)
    write_points(tmp_path / "scan.points")
    source = probe(path)
    assert isinstance(source, PreparedWarpSource)
    ready = source.prepare()
    try:
        assert isinstance(ready, WarpSource) and not hasattr(ready, "prepare")
        out = ready.open().read_region(0, 0, ready.width, ready.height)
        # Output pixels are ~1.34 input pixels across (the diagonal keeps its pixel
        # count, as gdalwarp sizes its output), so the input covers W*H/1.34².
        assert (out[..., 3] == 255).sum() == pytest.approx(W * H / 1.342**2, rel=0.03)
    finally:
        source.release()


def test_too_few_enabled_gcps_is_an_input_error(image: Path) -> None:
    write_points(image.with_name("scan.tif.points"), enabled=[1, 1, 0, 0, 0])
    with pytest.raises(GCPError, match="at least 3 enabled GCPs, found 2") as info:
        probe(image)
    assert isinstance(info.value, InputError)


def test_bad_options_are_option_errors(image: Path) -> None:
    write_points(image.with_name("scan.tif.points"))
    with pytest.raises(OptionError, match="--warp-resampler"):
        probe(image, resampler="lanczos")
    with pytest.raises(OptionError, match="--order"):
        probe(image, order=5)
    with pytest.raises(OptionError, match="--output-size"):
        probe(image, output_size=(0, 10))


def test_pixel_limit_applies_to_the_output(image: Path) -> None:
    write_points(image.with_name("scan.tif.points"))
    options = BuildOptions(max_pixels=W * H + 10)  # the input fits, its rotation does not
    with pytest.raises(ImageTooLarge, match="--output-size"):
        plugins.load().registry.probe(image, options)


def test_build_command_makes_a_pyramid_of_the_warp(tmp_path: Path) -> None:
    path = tmp_path / "scan.png"
    Image.fromarray(IMG).save(path)
    write_points(tmp_path / "gcps.points")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "pyramidd.cli", "build", str(path), str(out),
           "--gcps", str(tmp_path / "gcps.points"), "--output-size", "150x130",
           "--warp-resampler", "bilinear", "--suffix", "png", "--workers", "1"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr + done.stdout
    assert "RMS" in done.stdout  # the GCP residual table, printed before the summary
    # the warp's reader counters, summed over the workers, in their own line
    assert re.search(r"^pyramidd: source: pixels [\d,]+, .*bytes read [\d.]+ \w+, .*fallbacks 0",
                     done.stdout, re.M), done.stdout
    top = Image.open(next((tmp_path / "out_files").glob("8/0_0.png")))
    assert top.mode == "RGBA"


class Recorder:
    """A progress callback that takes notices, noting how far the build was at each."""

    def __init__(self) -> None:
        self.at = (0, 0)
        self.notices: list[tuple[str, dict, tuple[int, int]]] = []

    def __call__(self, done: int, total: int) -> None:
        self.at = (done, total)

    def notice(self, message: str, counters) -> None:  # type: ignore[no-untyped-def]
        self.notices.append((message, dict(counters), self.at))


def test_a_fallback_reaches_the_progress_while_the_build_runs(tmp_path: Path) -> None:
    # A quarter turn read one scanline at a time through a cache of 100 RGB lines
    # (JPEG tiles: no alpha band), one output row per step: each row of a 254-pixel
    # tile needs 254 lines, so the detector trips.
    size = 512
    path = tmp_path / "scan.npy"
    np.save(path, np.random.default_rng(4).integers(0, 256, (size, size, 3), dtype=np.uint8))
    turn = [(p, ln, 1000 + ln, 2000 + p) for p, ln in [(0, 0), (size, 0), (0, size), (size, size)]]
    write_points(tmp_path / "scan.points", turn)
    options = BuildOptions(workers=2, extra={"warp": {
        "order": 1, "piece": (size, 1), "band_rows": 1, "thrash_window": 8192,
        "cache_mb": 100 * size * 3 / 2**20}})
    progress = Recorder()
    summary = build_sync(path, tmp_path / "out", options, progress=progress)
    assert progress.notices, "no notice during the build"
    message, counters, (done, total) = progress.notices[0]
    assert message == FALLBACK_NOTICE and counters["fallbacks"] >= 1
    assert done < total  # heard while tiles were still to be written
    # one notice per fallback, and the summary counts the same fallbacks
    assert len(progress.notices) == summary.details["source_counters"]["fallbacks"]


def test_warp_options_without_gcps_build_unwarped_with_a_warning(image: Path) -> None:
    with structlog.testing.capture_logs() as logs:
        source = probe(image, gcps=None, order=2)
    assert not isinstance(source, WarpSource)
    assert any(e["event"] == "warp.no_gcps" for e in logs)
