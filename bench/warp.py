"""Benchmark: pyramidd's warp against ``gdalwarp`` on a large tiled input.

A ``SIZE`` x ``SIZE`` RGB tiled TIFF (256-pixel tiles, uncompressed) is rotated by 30°
with an order 1 polynomial from five GCPs and sampled with nearest neighbour, by

- pyramidd: the ``warp`` source opened as a render worker opens it, every output
  tile (256 px) read with ``read_region`` in Z order, as the engine asks for them;
  the pixels are produced and dropped (no pyramid, no encoding), so this times the
  warp and its input reads alone;
- GDAL: ``gdalwarp -wm 64`` with ``GDAL_CACHEMAX=64``, same GCPs, same output grid
  (``-te``/``-ts``), ``-dstalpha`` (pyramidd's output has alpha too), writing a
  GeoTIFF.

For each: wall time, peak memory of the process tree (PSS, sampled every 0.1 s),
and bytes read (``rchar`` of the process tree: every ``read()``, the input file
and anything else; pyramidd's own count of input bytes is shown too). Ratios are
pyramidd / GDAL. With ``--build``, ``pyramidd build`` (the whole DZI pyramid,
JPEG tiles) is timed as well, for scale.

    .venv/bin/python bench/warp.py                # 20000 x 20000, ~1.2 GB input
    .venv/bin/python bench/warp.py --size 4000    # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

TILE = 256
ANGLE = 30.0


def rchar() -> int:
    """Bytes this process and its reaped children have read (``/proc/self/io``)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    return 0


def make_source(path: Path, size: int) -> None:
    """A textured tiled TIFF written tile by tile (never the whole image in memory)."""
    import tifffile

    if path.exists() and path.stat().st_size >= size * size * 3:
        return
    yy, xx = np.mgrid[0:TILE, 0:TILE]

    def tiles():  # type: ignore[no-untyped-def]
        for ty in range(-(-size // TILE)):
            for tx in range(-(-size // TILE)):
                x, y = xx + tx * TILE, yy + ty * TILE
                yield np.stack(
                    [(x * 3 + y) & 255, (x ^ y) & 255, ((x // 7) * (y // 5)) & 255], -1
                ).astype(np.uint8)

    tmp = path.with_suffix(".part")
    tifffile.imwrite(tmp, tiles(), shape=(size, size, 3), dtype=np.uint8, tile=(TILE, TILE),
                     photometric="rgb", bigtiff=True)
    tmp.rename(path)


def gcps(size: int) -> list[tuple[float, float, float, float]]:
    """Five GCPs of a 30° rotation at one map unit per pixel (exact, so RMS 0)."""
    th = np.radians(ANGLE)
    out = []
    for px, ln in [(0, 0), (size, 0), (0, size), (size, size), (size / 2, size / 3)]:
        x = px * np.cos(th) - ln * np.sin(th)
        y = -(px * np.sin(th) + ln * np.cos(th))
        out.append((float(px), float(ln), round(float(x), 3), round(float(y), 3)))
    return out


def write_sidecars(src: Path, points: list[tuple[float, float, float, float]]) -> Path:
    """``SRC.points`` for pyramidd and a VRT with the same GCPs for gdalwarp."""
    rows = ["mapX,mapY,sourceX,sourceY,enable,dX,dY,residual"]
    rows += [f"{x!r},{y!r},{p!r},{-ln!r},1,0,0,0" for p, ln, x, y in points]
    src.with_name(src.name + ".points").write_text("\n".join(rows) + "\n")
    vrt = src.with_suffix(".vrt")
    args = ["gdal_translate", "-q", "-of", "VRT"]
    for p in points:
        args += ["-gcp", *(repr(v) for v in p)]
    subprocess.run([*args, str(src), str(vrt)], check=True)
    return vrt


def run_measured(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, float]:
    """Run ``cmd``; wall, peak tree memory, bytes read, and its stdout."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from pyramidd.memory import PeakSampler

    before = rchar()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
    with PeakSampler(proc.pid) as peak:
        out, _ = proc.communicate()
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"{cmd[0]} failed with {proc.returncode}")
    return {
        "wall": wall,
        "peak": peak.peak,
        "rchar": rchar() - before,
        "maxrss": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
        "stdout": out,
    }


def child_pyramidd(src: Path, cache_mb: float) -> None:
    """Open the warp as a worker would and read every output tile in Z order."""
    from pyramidd import plugins
    from pyramidd.morton import encode
    from pyramidd.options import BuildOptions

    options = BuildOptions(extra={"warp": {"order": 1, "resampler": "near", "cache_mb": cache_mb}})
    source = plugins.load().registry.probe(src, options)
    reader = source.open()
    cols, rows = -(-source.width // TILE), -(-source.height // TILE)
    cells = sorted(((i, j) for j in range(rows) for i in range(cols)), key=lambda c: encode(*c))
    checksum = 0
    for i, j in cells:
        x, y = i * TILE, j * TILE
        tile = reader.read_region(x, y, min(TILE, source.width - x), min(TILE, source.height - y))
        checksum = (checksum + int(tile[::61, ::53].sum())) & 0xFFFFFFFF
    c = reader.counters.as_dict()
    c.update(width=source.width, height=source.height, checksum=checksum, grid=source.grid.gdalwarp_args())
    reader.close()
    print(json.dumps(c))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=20000)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/pyramidd-bench-warp"))
    ap.add_argument("--cache-mb", type=float, default=64)
    ap.add_argument("--build", action="store_true", help="also time pyramidd build (DZI, JPEG)")
    ap.add_argument("--keep", action="store_true", help="keep the generated input and outputs")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child_pyramidd(args.child, args.cache_mb)
        return

    args.workdir.mkdir(parents=True, exist_ok=True)
    src = args.workdir / f"src{args.size}.tif"
    print(f"input: {args.size}x{args.size} RGB, {TILE}-px tiles, uncompressed: {src}", flush=True)
    make_source(src, args.size)
    source_bytes = src.stat().st_size
    vrt = write_sidecars(src, gcps(args.size))

    py = run_measured([sys.executable, __file__, "--child", str(src), "--cache-mb", str(args.cache_mb)])
    info = json.loads(py["stdout"].strip().splitlines()[-1])
    print(f"output: {info['width']}x{info['height']} RGBA, rotated {ANGLE}°, order 1, nearest", flush=True)

    out_tif = args.workdir / "gdalwarp.tif"
    env = dict(os.environ, GDAL_CACHEMAX="64")
    gd = run_measured(
        ["gdalwarp", "-q", "-overwrite", "-wm", "64", "-order", "1", "-r", "near", "-dstalpha",
         *info["grid"], str(vrt), str(out_tif)],
        env=env,
    )

    def row(name: str, r: dict[str, float], extra: str = "") -> None:
        print(f"{name:<22} wall {r['wall']:8.1f} s   peak {r['peak'] / 2**20:8.1f} MiB   "
              f"read {r['rchar'] / 2**30:7.3f} GiB ({r['rchar'] / source_bytes:5.2f}x input){extra}")

    print(f"input file {source_bytes / 2**30:.3f} GiB")
    row("pyramidd warp", py, f"   [input bytes {info['bytes_read'] / source_bytes:.3f}x, "
        f"{info['piece_reads']} tile reads, fallbacks {info['fallbacks']}]")
    row("gdalwarp -wm 64", gd)
    print(
        f"ratios pyramidd/gdalwarp: wall {py['wall'] / gd['wall']:.2f}  "
        f"peak memory {py['peak'] / gd['peak']:.2f}  bytes read {py['rchar'] / gd['rchar']:.2f}"
    )
    if args.build:
        out = args.workdir / "pyramid"
        shutil.rmtree(args.workdir / "pyramid_files", ignore_errors=True)
        b = run_measured([sys.executable, "-m", "pyramidd.cli", "build", str(src), str(out), "--replace",
                          "--order", "1", "--warp-resampler", "near"])
        row("pyramidd build (DZI)", b)
    if not args.keep:
        out_tif.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
