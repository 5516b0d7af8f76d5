"""Benchmark: pyramidd's warp against ``gdalwarp`` on a large tiled input, in one run.

A ``SIZE`` x ``SIZE`` RGB tiled TIFF (256-pixel tiles, uncompressed) is rotated by 30°
with an order 1 polynomial from five GCPs and sampled with nearest neighbour. Cases
(``--cases``, comma-separated, default both):

- ``build``: ``pyramidd build SRC OUT --gcps SRC.points --order 1 --warp-resampler
  near`` as a subprocess: the whole Deep Zoom pyramid (254/1, JPEG q75, one worker
  per CPU), warp, tiles and encoding included;
- ``read``: the ``warp`` source opened as a render worker opens it, every output tile
  (256 px) read with ``read_region`` in Z order, as the engine asks for them; the
  pixels are produced and dropped (no pyramid, no encoding), so this times the warp
  and its input reads alone.

The anchor, in the same run (tools take turns, ``--repeat`` rounds, medians shown):
``gdalwarp -wm 64`` with ``GDAL_CACHEMAX=64``, same GCPs (a VRT), same output grid
(``-te``/``-ts``), ``-dstalpha`` (marking the outside of the input, which pyramidd's
JPEG tiles fill with the background colour), writing an uncompressed GeoTIFF.

Every command is run by ``measure.py``: wall time, CPU time and peak memory of the
process tree (PSS, sampled from outside). Bytes read are ``rchar`` of the process tree
(every ``read()``: the input, and Python modules, GDAL's data files...) and, for
pyramidd, the input bytes its warp itself counted (the build's ``source_counters``,
picked up by the ``record_summary`` plugin). Ratios are pyramidd / gdalwarp. The
input stays in the page cache between runs (it was just written or read), so no
tool pays for the disk.

    .venv/bin/python bench/warp.py --workdir /work/bench-warp --repeat 3   # 20000², 1.1 GiB input
    .venv/bin/python bench/warp.py --size 4000                  # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from measure import PYRAMIDD, code_version, measure  # noqa: E402

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


def timed(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, float]:
    """Run ``cmd`` with ``measure.py``; its wall, CPU, peak tree memory and ``rchar``."""
    before = rchar()
    m = measure(cmd, env=env)
    return {"wall": m.wall, "cpu": m.cpu, "peak": m.peak, "rchar": rchar() - before}


def middle(runs: list[dict[str, float]]) -> dict[str, float]:
    """The median of each figure over rounds (counters: the last round's)."""
    out = {k: statistics.median(r[k] for r in runs) for k in ("wall", "cpu", "peak", "rchar")}
    if "counters" in runs[-1]:
        out["counters"] = runs[-1]["counters"]
    return out


def child_pyramidd(src: Path, cache_mb: float, result: Path) -> None:
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
    c.update(width=source.width, height=source.height, checksum=checksum)
    reader.close()
    result.write_text(json.dumps(c))


def output_grid(src: Path) -> tuple[int, int, int, list[str]]:
    """The warp's output size and bands (as for JPEG tiles), and its ``gdalwarp`` grid
    arguments (GCPs from the sidecar)."""
    from pyramidd import plugins
    from pyramidd.options import BuildOptions

    source = plugins.load().registry.probe(src, BuildOptions(extra={"warp": {"order": 1}}))
    return source.width, source.height, source.bands, source.grid.gdalwarp_args()


def run_build(src: Path, points: Path, out: Path, workdir: Path) -> dict[str, float]:
    """``pyramidd build`` of the warp to a DZI; its figures and the build's source counters."""
    shutil.rmtree(out.with_name(out.name + "_files"), ignore_errors=True)
    summary = workdir / "summary.json"
    summary.unlink(missing_ok=True)
    # The plugin records the build's summary (with the warp's own count of input
    # bytes) without changing what the build does or prints.
    env = {"PYRAMIDD_PLUGINS": "record_summary", "PYRAMIDD_BENCH_SUMMARY": str(summary),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(BENCH), os.environ.get("PYTHONPATH")]))}
    r = timed([*PYRAMIDD, "build", str(src), str(out), "--replace",
               "--gcps", str(points), "--order", "1", "--warp-resampler", "near"], env=env)
    r["counters"] = json.loads(summary.read_text()).get("source_counters", {})  # type: ignore[assignment]
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=20000)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/pyramidd-bench-warp"))
    ap.add_argument("--cache-mb", type=float, default=32,
                    help="warp cache of the read case (default: one build worker's)")
    ap.add_argument("--cases", default="build,read", help="build, read, or both (default)")
    ap.add_argument("--repeat", type=int, default=1, help="rounds; medians are shown (default 1)")
    ap.add_argument("--keep", action="store_true", help="keep the generated input and outputs")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child_pyramidd(args.child, args.cache_mb, args.result)
        return
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    if not cases or set(cases) - {"build", "read"}:
        raise SystemExit(f"--cases takes build and/or read, got {args.cases!r}")

    print(code_version(), flush=True)
    args.workdir.mkdir(parents=True, exist_ok=True)
    src = args.workdir / f"src{args.size}.tif"
    print(f"input: {args.size}x{args.size} RGB, {TILE}-px tiles, uncompressed: {src}", flush=True)
    make_source(src, args.size)
    source_bytes = src.stat().st_size
    vrt = write_sidecars(src, gcps(args.size))
    points = src.with_name(src.name + ".points")
    width, height, bands, grid = output_grid(src)
    print(f"output: {width}x{height} {'RGBA' if bands == 4 else 'RGB'} (gdalwarp: RGBA), "
          f"rotated {ANGLE}°, order 1, nearest", flush=True)

    out_tif = args.workdir / "gdalwarp.tif"
    runs: dict[str, list[dict[str, float]]] = {"gdalwarp": [], **{c: [] for c in cases}}
    # Tools take turns round by round, so load from elsewhere falls on each of them.
    for n in range(args.repeat):
        print(f"round {n + 1} of {args.repeat}", flush=True)
        runs["gdalwarp"].append(timed(
            ["gdalwarp", "-q", "-overwrite", "-wm", "64", "-order", "1", "-r", "near",
             "-dstalpha", *grid, str(vrt), str(out_tif)], env={"GDAL_CACHEMAX": "64"}))
        out_tif.unlink(missing_ok=True)  # 1.5 GiB at 20000²; not needed past here
        if "build" in cases:
            runs["build"].append(run_build(src, points, args.workdir / "pyramid", args.workdir))
        if "read" in cases:
            result = args.workdir / "read.json"
            r = timed([sys.executable, __file__, "--child", str(src),
                       "--cache-mb", str(args.cache_mb), "--result", str(result)])
            r["counters"] = json.loads(result.read_text())  # type: ignore[assignment]
            runs["read"].append(r)
    gd = middle(runs.pop("gdalwarp"))
    results = {case: middle(r) for case, r in runs.items()}

    def row(name: str, r: dict[str, float]) -> None:
        counters: dict[str, float] = r.get("counters") or {}  # type: ignore[assignment]
        own = ""
        if counters:
            own = (f"   [warp read {counters['bytes_read'] / 2**30:.3f} GiB = "
                   f"{counters['bytes_read'] / source_bytes:.3f}x input, "
                   f"{counters['piece_reads']:,} tile reads, fallbacks {counters['fallbacks']}]")
        print(f"{name:<24} wall {r['wall']:8.1f} s   cpu {r['cpu']:8.1f} s   "
              f"peak {r['peak'] / 2**20:8.1f} MiB   rchar {r['rchar'] / 2**30:7.3f} GiB "
              f"({r['rchar'] / source_bytes:5.2f}x input){own}")

    print(f"input file {source_bytes / 2**30:.3f} GiB ({source_bytes:,} bytes)")
    row("gdalwarp -wm 64", gd)
    names = {"build": "pyramidd build (DZI)", "read": "pyramidd warp reads"}
    for case, r in results.items():
        row(names[case], r)
    for case, r in results.items():
        print(f"ratios {names[case]} / gdalwarp: wall {r['wall'] / gd['wall']:.2f}  "
              f"peak memory {r['peak'] / gd['peak']:.2f}  rchar {r['rchar'] / gd['rchar']:.2f}")
    if not args.keep:
        shutil.rmtree(args.workdir / "pyramid_files", ignore_errors=True)
        (args.workdir / "pyramid.dzi").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
