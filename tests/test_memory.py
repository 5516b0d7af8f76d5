"""Memory of a build does not grow with the image when the source reads regions."""

from __future__ import annotations

import sys
import time
import subprocess
from pathlib import Path

import numpy as np
import tifffile

from PIL import Image

from bigpng import expected_rows, write_png
from pyramidd.memory import tree_bytes

PYRAMIDD = [sys.executable, "-m", "pyramidd"]  # as the installed command


def tiled_tiff(path: Path, side: int) -> None:
    """A side x side grey tiled TIFF written tile by tile (never whole in memory)."""
    tile = 256
    rng = np.random.default_rng(side)
    pattern = rng.integers(0, 256, (tile, tile), dtype=np.uint8)

    def tiles():
        for r in range(side // tile):
            for c in range(side // tile):
                yield np.roll(pattern, r * 7 + c, axis=1)

    tifffile.imwrite(path, tiles(), shape=(side, side), dtype=np.uint8, tile=(tile, tile),
                     photometric="minisblack")


def peak_of_build(src: Path, out: Path, *extra: str) -> int:
    proc = subprocess.Popen([*PYRAMIDD, "build", str(src), str(out), "--workers", "2", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_bytes(proc.pid))
        time.sleep(0.03)
    assert proc.returncode == 0, proc.stderr.read().decode()
    return peak


def test_peak_memory_is_flat_in_image_size(tmp_path):
    # Both sizes fill the readers' bounded caches; the larger has four times the pixels.
    small, large = tmp_path / "small.tif", tmp_path / "large.tif"
    tiled_tiff(small, 8192)
    tiled_tiff(large, 16384)
    p_small = peak_of_build(small, tmp_path / "s")
    p_large = peak_of_build(large, tmp_path / "l")
    assert (tmp_path / "l.dzi").exists()
    mib = 1 << 20
    assert p_large < 1.1 * p_small, (p_small / mib, p_large / mib)


def test_a_30000_square_png_builds_within_a_1_gib_budget(tmp_path):
    # 2.5 GiB of RGB decoded whole; streamed in bands of builder rows it must stay
    # under the budget, counting every process of the build (PSS: shared memory once).
    src = tmp_path / "big.png"
    write_png(src, 30000, 30000)
    budget = 1 << 30
    peak = peak_of_build(src, tmp_path / "big", "--memory-budget", str(budget), "--quality", "95")
    assert peak < budget, peak / (1 << 20)
    # Spot-check full-resolution tiles (254 + overlap 1, JPEG) against the rows written.
    files = tmp_path / "big_files"
    top = max(int(p.name) for p in files.iterdir())
    for col, row in [(0, 0), (57, 61), (118, 118)]:
        tile = np.asarray(Image.open(files / str(top) / f"{col}_{row}.jpg").convert("RGB"))
        x0, y0 = max(0, col * 254 - 1), max(0, row * 254 - 1)
        h, w = tile.shape[:2]
        want = expected_rows(30000, y0, y0 + h, 3, 256)[:, x0 : x0 + w]
        assert np.abs(tile.astype(int) - want).mean() < 3, (col, row)


def _header_bomb(path: Path, mode: str, side: int) -> Path:
    """A tiny JPEG or GIF whose header claims ``side`` x ``side`` pixels."""
    import io
    import struct

    b = io.BytesIO()
    Image.new(mode, (16, 16)).save(b, "GIF" if path.suffix == ".gif" else "JPEG")
    data = bytearray(b.getvalue())
    if path.suffix == ".gif":
        struct.pack_into("<HH", data, 6, side, side)  # logical screen
        at = data.index(b",")  # image descriptor
        struct.pack_into("<HH", data, at + 5, side, side)
    else:
        at = data.index(b"\xff\xc0")  # baseline frame header: height, width
        struct.pack_into(">HH", data, at + 5, side, side)
    path.write_bytes(bytes(data))
    return path


def test_a_whole_decode_over_the_budget_is_refused_before_decoding(tmp_path):
    # CMYK JPEG and GIF cannot be decoded in bands: a few hundred bytes of header
    # claiming 20000² would take 2.8 GiB (CMYK) or 1.9 GiB (GIF) of decoding.
    for name, mode in [("c.jpg", "CMYK"), ("g.gif", "P")]:
        src = _header_bomb(tmp_path / name, mode, 20000)
        proc = subprocess.Popen(
            [*PYRAMIDD, "build", str(src), str(tmp_path / "out"), "--memory-budget", "256M"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        peak = 0
        while proc.poll() is None:
            peak = max(peak, tree_bytes(proc.pid))
            time.sleep(0.02)
        err = proc.stderr.read()
        assert proc.returncode == 2, err
        assert f"{name}: decoding it whole takes" in err and "over the memory budget of 256 MiB" in err
        assert len(err.strip().splitlines()) == 1
        assert peak < 256 << 20, peak
        assert not list(tmp_path.glob("out*"))  # nothing of the output was made
    # Within its budget the same kind of file builds.
    small = tmp_path / "small.jpg"
    Image.new("CMYK", (600, 400), (0, 255, 255, 0)).save(small)
    proc = subprocess.run([*PYRAMIDD, "build", str(small), str(tmp_path / "small"),
                           "--memory-budget", "256M"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "small.dzi").exists()
