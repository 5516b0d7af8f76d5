"""Raster benchmark: pyramidd against vips dzsave and gdal2tiles on the same input, in one run.

    .venv/bin/python bench/raster.py [--size 16384] [--repeat 5] [--no-gdal2tiles]

Generates a tiled TIFF (RGB, 256-pixel tiles, uncompressed unless --compression),
then for each case runs every tool ``--repeat`` times and prints the median wall
time, CPU time, peak memory of the process tree and pyramidd's ratio to each anchor:

- DZI 254/1 JPEG q85: ``pyramidd build --workers 2`` vs ``vips dzsave``
  (VIPS_CONCURRENCY=2);
- XYZ 256 PNG: ``pyramidd build --layout xyz --suffix png`` vs
  ``vips dzsave --layout google --suffix .png``;
- TMS 256 PNG: pyramidd vs ``gdal2tiles.py -p raster --processes=2`` (slow: one run).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import tifffile

sys.path.insert(0, str(Path(__file__).parent))
from measure import Measurement, measure, median  # noqa: E402

MIB = 1 << 20


def make_input(path: Path, side: int, compression: str | None) -> None:
    """A textured RGB tiled TIFF, written tile by tile (never whole in memory)."""
    tile = 256
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:tile, 0:tile]

    def tiles():
        for r in range(-(-side // tile)):
            for c in range(-(-side // tile)):
                g = ((xx + c * tile) * 255 // side, (yy + r * tile) * 255 // side, (xx ^ yy) + r + c)
                noise = rng.integers(0, 24, (tile, tile, 3))
                yield ((np.stack(g, -1) + noise) % 256).astype(np.uint8)

    tifffile.imwrite(path, tiles(), shape=(side, side, 3), dtype=np.uint8, tile=(tile, tile),
                     photometric="rgb", compression=compression, bigtiff=side > 20000)


def run_case(name: str, commands: dict[str, list[str]], env: dict[str, dict[str, str]],
             out: Path, repeat: int) -> dict[str, Measurement]:
    results = {}
    for tool, cmd in commands.items():
        runs = []
        for _ in range(repeat if tool != "gdal2tiles" else 1):
            for p in out.iterdir():
                shutil.rmtree(p) if p.is_dir() else p.unlink()
            runs.append(measure(cmd, env.get(tool)))
        results[tool] = median(runs)
    print(f"\n{name}")
    print(f"  {'tool':<12}{'wall s':>9}{'cpu s':>9}{'peak MiB':>10}{'wall ratio':>12}{'peak ratio':>12}")
    ours = results["pyramidd"]
    for tool, m in results.items():
        ratio = "" if tool == "pyramidd" else f"{ours.wall / m.wall:>12.2f}"
        pratio = "" if tool == "pyramidd" else f"{ours.peak / m.peak:>12.2f}"
        print(f"  {tool:<12}{m.wall:>9.2f}{m.cpu:>9.2f}{m.peak / MIB:>10.0f}{ratio}{pratio}")
    print("  (ratio = pyramidd / tool; below 1 means pyramidd is faster or smaller)")
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=16384)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--compression", default=None, help="TIFF compression of the input (default none)")
    ap.add_argument("--no-gdal2tiles", action="store_true", help="skip the slow gdal2tiles case")
    ap.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it")
    args = ap.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="pyramidd-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    src = work / f"in{args.size}.tif"
    if not src.exists():
        print(f"writing {src} ({args.size}x{args.size} RGB tiled TIFF)")
        make_input(src, args.size, args.compression)
    out = work / "out"
    out.mkdir(exist_ok=True)
    pyramidd = [sys.executable, "-m", "pyramidd.cli", "build", str(src)]
    w = str(args.workers)
    vips_env = {"VIPS_CONCURRENCY": w}
    print(f"input {src}: {src.stat().st_size / MIB:.0f} MiB; workers {w}; median of {args.repeat}")

    run_case(
        "DZI 254/1 JPEG q85",
        {
            "pyramidd": [*pyramidd, str(out / "p"), "--workers", w, "--quality", "85"],
            "vips": ["vips", "dzsave", str(src), str(out / "v"), "--tile-size", "254", "--overlap", "1",
                     "--suffix", ".jpg[Q=85]"],
        },
        {"vips": vips_env}, out, args.repeat,
    )
    run_case(
        "XYZ 256 PNG",
        {
            "pyramidd": [*pyramidd, str(out / "p"), "--workers", w, "--layout", "xyz", "--suffix", "png"],
            "vips": ["vips", "dzsave", str(src), str(out / "v"), "--layout", "google", "--suffix", ".png"],
        },
        {"vips": vips_env}, out, args.repeat,
    )
    if not args.no_gdal2tiles:
        gdal2tiles = shutil.which("gdal2tiles.py") or "gdal2tiles"
        run_case(
            "TMS 256 PNG (gdal2tiles: one run)",
            {
                "pyramidd": [*pyramidd, str(out / "p"), "--workers", w, "--layout", "tms", "--suffix", "png"],
                "gdal2tiles": [gdal2tiles, "-q", "-p", "raster", "-w", "none", f"--processes={w}",
                               str(src), str(out / "g")],
            },
            {}, out, args.repeat,
        )
    one = run_case(
        "scaling: DZI JPEG q85, 1 worker vs 2",
        {
            "pyramidd": [*pyramidd, str(out / "p"), "--workers", w, "--quality", "85"],
            "pyramidd-1": [*pyramidd, str(out / "p"), "--workers", "1", "--quality", "85"],
        },
        {}, out, args.repeat,
    )
    print(f"  speed-up from 1 to {w} workers: {one['pyramidd-1'].wall / one['pyramidd'].wall:.2f}x")
    if args.keep is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
