"""Raster benchmark: pyramidd against vips dzsave and gdal2tiles on the same input, in one run.

    .venv/bin/python bench/raster.py [--size 16384] [--repeat 5] [--cases dzi,jpeg,xyz,tms,scaling]
    .venv/bin/python bench/raster.py --cases flat [--flat-sizes 16384,65536]

Generates a tiled TIFF (RGB, 256-pixel tiles, uncompressed unless --compression),
then for each case runs every tool ``--repeat`` times and prints the median wall
time, CPU time, peak memory of the process tree and pyramidd's ratio to each anchor.
Cases (``--cases``, comma-separated; the default is every case but ``flat``):

- ``dzi``: DZI 254/1 JPEG q85, ``pyramidd build --workers 2`` vs ``vips dzsave``
  (VIPS_CONCURRENCY=2);
- ``jpeg``: the same from a baseline JPEG of the same pixels (``--size``², quality 90,
  4:2:0): a format read from top to bottom, not by region;
- ``xyz``: XYZ 256 PNG, ``pyramidd build --layout xyz --suffix png`` vs
  ``vips dzsave --layout google --suffix .png``;
- ``tms``: TMS 256 PNG, pyramidd vs ``gdal2tiles.py -p raster --processes=2`` (slow:
  gdal2tiles runs once; ``--no-gdal2tiles`` drops the case);
- ``scaling``: DZI JPEG q85 with 1 worker vs 2: as one-shot commands; the same
  commands on a 256² TIFF (a dozen tiles), the build's fixed part (interpreters
  starting, the plan, the viewer page, the durable commit), and the speed-up of the
  rest, whole minus fixed part; in the running service (its pool warm); and the machine's own
  scaling as a control (1 vs 2 processes of a CPU-bound and of a memory-bound
  workload, of JPEG encoding, and of two whole one-worker builds at once).
  ``--scaling-size`` builds a larger input for this case alone (the fixed part weighs
  less there);
- ``flat``: peak memory against image size for a region-read source: DZI 254/1 JPEG
  q85 from tiled TIFFs of each of ``--flat-sizes`` (default 16384 and 65536: the
  larger is 12 GiB on disk, written tile by tile, never whole in memory; its noise
  comes from a bank of pre-drawn tiles to keep it quick to write), pyramidd and vips
  each ``--flat-repeat`` times (default once), with the ratio of the largest size's
  peak to the smallest's. Opt-in: about 15 minutes at 65536 on two cores.

Without ``--keep``, the work folder (and the inputs in it) is deleted at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tifffile

sys.path.insert(0, str(Path(__file__).parent))
from measure import (  # noqa: E402
    PYRAMIDD, Measurement, code_version, drop_runs_in_memory, finish_outputs, fresh_folder, measure, median,
    settle, start_outputs)

MIB = 1 << 20
GIB = 1 << 30
CASES = ("dzi", "jpeg", "xyz", "tms", "scaling", "flat")
DEFAULT_CASES = "dzi,jpeg,xyz,tms,scaling"


def texture_tiles(side: int, tile: int = 256, bank: int = 0, seed: int = 0) -> Iterator[np.ndarray]:
    """Textured RGB tiles of a ``side``² image, row by row: two gradients, an xor
    pattern and noise (drawn from ``seed``), so that encoders work as on a real image.

    ``bank`` > 0 takes each tile's noise from that many pre-drawn tiles instead of
    drawing it afresh: several times quicker, for inputs of many GiB.
    """
    rng = np.random.default_rng(seed)
    span = np.arange(tile)
    xor = (span[None, :] ^ span[:, None]).astype(np.uint8)
    noises = rng.integers(0, 24, (bank, tile, tile, 3)).astype(np.uint8) if bank else None
    n = -(-side // tile)
    for r in range(n):
        for c in range(n):
            t = np.empty((tile, tile, 3), np.uint8)
            t[..., 0] = ((span + c * tile) * 255 // side).astype(np.uint8)[None, :]
            t[..., 1] = ((span + r * tile) * 255 // side).astype(np.uint8)[:, None]
            t[..., 2] = xor + np.uint8((r + c) % 256)
            # uint8 addition wraps: the same as adding, then taking modulo 256.
            t += (noises[(r * 7 + c * 3) % bank] if noises is not None
                  else rng.integers(0, 24, (tile, tile, 3)).astype(np.uint8))
            yield t


def make_input(path: Path, side: int, compression: str | None, bank: int = 0) -> None:
    """A textured RGB tiled TIFF, written tile by tile (never whole in memory)."""
    tifffile.imwrite(path, texture_tiles(side, bank=bank), shape=(side, side, 3), dtype=np.uint8,
                     tile=(256, 256), photometric="rgb", compression=compression,
                     bigtiff=side > 20000)


def texture_image(side: int, seed: int = 0) -> np.ndarray:
    """The pixels of :func:`texture_tiles` as one ``side`` x ``side`` x 3 array."""
    tile = 256
    n = -(-side // tile)
    pixels = np.empty((n * tile, n * tile, 3), np.uint8)
    for i, t in enumerate(texture_tiles(side, tile, seed=seed)):
        r, c = divmod(i, n)
        pixels[r * tile:(r + 1) * tile, c * tile:(c + 1) * tile] = t
    return pixels[:side, :side]


def make_jpeg(path: Path, side: int, seed: int = 0) -> None:
    """A baseline JPEG (quality 90, 4:2:0) of the same pixels as :func:`make_input`'s TIFF.

    Pillow encodes from a whole image, so the pixels are held once (3 bytes a pixel).
    """
    from PIL import Image

    Image.fromarray(texture_image(side, seed)).save(
        path, "JPEG", quality=90, subsampling="4:2:0", progressive=False, optimize=False)


def ensure_space(folder: Path, need: int) -> None:
    """Exit with a message unless ``folder``'s disk has ``need`` bytes free."""
    free = shutil.disk_usage(folder).free
    if free < need:
        sys.exit(f"{folder}: {free / GIB:.1f} GiB free, the case needs about {need / GIB:.1f} GiB")


#: Runs of each case per round whose output stays on disk until the bench ends.
OUTPUT_RUNS = {"dzi": 2, "jpeg": 2, "xyz": 2, "tms": 2, "scaling": 5}

#: Stands for the output folder in a command: each run writes into a new one.
OUT = "{out}"


def run_case(name: str, commands: dict[str, list[str]], env: dict[str, dict[str, str]],
             out: Path, repeat: int, memory: bool = True) -> dict[str, Measurement]:
    """Run each command ``repeat`` times (gdal2tiles once), print medians and ratios to pyramidd.

    The tools take turns, round after round, so that load from elsewhere on the
    machine falls on all of them alike. :data:`OUT` in a command is replaced by a new
    folder for each run (:func:`fresh_folder`). ``memory`` False: time only, with no
    memory sampler beside the runs (see :func:`measure.measure`).
    """
    print(f"\n{name} (load average at start: {os.getloadavg()[0]:.2f})", flush=True)
    runs: dict[str, list[Measurement]] = {tool: [] for tool in commands}
    for round_ in range(repeat):
        for tool, cmd in commands.items():
            if tool == "gdal2tiles" and round_:
                continue
            drop_runs_in_memory(out)
            dest = fresh_folder(out)
            settle()
            runs[tool].append(measure([a.replace(OUT, str(dest)) for a in cmd], env.get(tool),
                                      interval=0.05 if memory else None))
    results = {tool: median(r) for tool, r in runs.items()}
    print(f"  {'tool':<12}{'wall s':>9}{'cpu s':>9}{'peak MiB':>10}{'wall ratio':>12}{'peak ratio':>12}")
    ours = results["pyramidd"]
    for tool, m in results.items():
        ratio = "" if tool == "pyramidd" else f"{ours.wall / m.wall:>12.2f}"
        peak = f"{m.peak / MIB:>10.0f}" if memory else f"{'-':>10}"
        pratio = "" if tool == "pyramidd" or not memory else f"{ours.peak / m.peak:>12.2f}"
        print(f"  {tool:<12}{m.wall:>9.2f}{m.cpu:>9.2f}{peak}{ratio}{pratio}")
    each = (lambda m: f"{m.wall:.1f}/{m.peak / MIB:.0f}") if memory else (lambda m: f"{m.wall:.2f}")
    print(f"  runs in order, wall s{'/peak MiB' if memory else ''}: " + "; ".join(
        f"{tool} {' '.join(map(each, r))}" for tool, r in runs.items()))
    print("  (ratio = pyramidd / tool; below 1 means pyramidd is faster or smaller)", flush=True)
    return results


#: Workloads of the machine's own scaling control: one CPU-bound, one that streams
#: memory, and the JPEG encoding a DZI build spends a third of its time in (a tile
#: build does all three).
CONTROLS = {
    "zlib level 6 of 1 MiB, 60 times": (
        "import os, zlib\nd = os.urandom(1 << 20)\nfor _ in range(60): zlib.compress(d, 6)"),
    "numpy copy of 64 MiB, 60 times": (
        "import numpy as np\na = np.ones(64 << 20, np.uint8); b = np.empty_like(a)\n"
        "for _ in range(60): np.copyto(b, a)"),
    "JPEG q85 of a 254² RGB tile (libjpeg-turbo, SIMD), 3000 times": (
        "import imagecodecs, numpy as np\n"
        "a = np.random.default_rng(0).integers(0, 256, (254, 254, 3), np.uint8)\n"
        "for _ in range(3000): imagecodecs.jpeg8_encode(a, level=85)"),
}


def work_at_once(cmd: list[str], n: int, repeat: int, out: Path) -> float:
    """Median over ``repeat`` rounds of how much work ``n`` copies of ``cmd`` running
    at once do against one alone (``n`` if nothing they share slows them down).

    :data:`OUT` in ``cmd`` becomes a new folder for each copy.
    """
    def start() -> subprocess.Popen[bytes]:
        dest = str(fresh_folder(out)) if any(OUT in a for a in cmd) else ""
        return subprocess.Popen([a.replace(OUT, dest) for a in cmd],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    ratios = []
    for _ in range(repeat):
        drop_runs_in_memory(out)
        settle()
        began = time.monotonic()
        start().wait()
        one = time.monotonic() - began
        drop_runs_in_memory(out)
        settle()
        began = time.monotonic()
        for p in [start() for _ in range(n)]:
            p.wait()
        ratios.append(n * one / (time.monotonic() - began))
    return statistics.median(ratios)


def machine_scaling(n: int, repeat: int, build: list[str], out: Path) -> None:
    """Print how much work the machine itself does with ``n`` processes at once
    against one: the ceiling of any build's speed-up from 1 to ``n`` workers here.

    Besides the fixed workloads of :data:`CONTROLS`, ``build`` (a one-worker build) is
    run ``n`` times at once: a speed-up with no coordination, no shared work and no
    idle worker, only the machine's own limits.
    """
    for name, code in CONTROLS.items():
        ratio = work_at_once([sys.executable, "-c", code], n, repeat, out)
        print(f"  machine control, {name}: {n} processes do {ratio:.2f}x the work of one")
    ratio = work_at_once(build, n, repeat, out)
    print(f"  build control, {n} one-worker builds at once: {ratio:.2f}x the work of one")


def rest_speedup(whole: dict[str, Measurement], fixed: dict[str, Measurement],
                 one: str, many: str) -> float:
    """Speed-up from tool ``one`` to tool ``many`` of what the builds of ``whole`` do
    beyond the builds of ``fixed`` (the same commands on an input of a few tiles): the
    tiles' own scaling, without the start-up and the end that no worker count
    shortens."""
    return (whole[one].wall - fixed[one].wall) / (whole[many].wall - fixed[many].wall)


def warm_scaling(src: Path, workers: int, repeat: int, out: Path, quality: int) -> None:
    """Print the speed-up from 1 to ``workers`` workers of the same build in the running
    service (``bench/service.py``), whose pool is warm: no interpreter, imports or
    fork server start inside the time, which runs from the input's rename into the
    drop folder until it is in ``done/``. Each service first builds the input once,
    untimed (its workers' first task imports the formats' modules and grows their
    heaps); then one build at a time, unobserved, the worker counts taking turns."""
    from service import run_service  # bench/service.py, which imports this module

    walls: dict[int, list[float]] = {1: [], workers: []}
    for _ in range(repeat):
        for n, runs in walls.items():
            drop_runs_in_memory(out)
            root = fresh_folder(out)
            settle()
            run = run_service(root, [src], n, 1, 600, memory=False, warmup=src, quality=quality)
            runs.append(run.measurement.wall)
    one, many = statistics.median(walls[1]), statistics.median(walls[workers])
    print(f"  in the service, pool warm: {workers} workers {many:.2f} s, 1 worker {one:.2f} s"
          f" (walls {' '.join(f'{v:.2f}' for v in walls[workers])};"
          f" {' '.join(f'{v:.2f}' for v in walls[1])}): speed-up {one / many:.2f}x", flush=True)


def parse_cases(text: str, no_gdal2tiles: bool) -> list[str]:
    """The case names of ``--cases``; exit naming the choices on an unknown one."""
    cases = [c.strip() for c in text.split(",") if c.strip()]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        sys.exit(f"unknown case {', '.join(unknown)}: choose from {', '.join(CASES)}")
    return [c for c in cases if not (no_gdal2tiles and c == "tms")]


def flat_case(work: Path, out: Path, sizes: list[int], w: str, repeat: int) -> None:
    """Peak memory of DZI builds from tiled TIFFs of each size: flat if it does not grow."""
    results: dict[int, dict[str, Measurement]] = {}
    for side in sizes:
        src = work / f"flat{side}.tif"
        if not src.exists():
            # The input, plus room for the largest output (JPEG tiles of noisy pixels run
            # to about a third of the uncompressed size).
            ensure_space(work, side * side * 3 * 3 // 2)
            print(f"writing {src} ({side}x{side} RGB tiled TIFF, {side * side * 3 / GIB:.1f} GiB)",
                  flush=True)
            make_input(src, side, None, bank=64)
        results[side] = run_case(
            f"flatness: DZI 254/1 JPEG q85 from a {side}² tiled TIFF ({repeat} run(s) each)",
            {
                "pyramidd": [*PYRAMIDD, "build", str(src), f"{OUT}/p",
                             "--workers", w, "--quality", "85"],
                "vips": ["vips", "dzsave", str(src), f"{OUT}/v", "--tile-size", "254",
                         "--overlap", "1", "--suffix", ".jpg[Q=85]"],
            },
            {"vips": {"VIPS_CONCURRENCY": w}}, out, repeat,
        )
    small, large = min(sizes), max(sizes)
    print(f"\nflatness: peak memory at {large}² ÷ at {small}² (flat: within 1.10)")
    for tool in ("pyramidd", "vips"):
        print(f"  {tool:<12}{results[large][tool].peak / results[small][tool].peak:>8.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=16384)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cases", default=DEFAULT_CASES,
                    help=f"comma-separated, from {','.join(CASES)} (default {DEFAULT_CASES})")
    ap.add_argument("--compression", default=None, help="TIFF compression of the input (default none)")
    ap.add_argument("--no-gdal2tiles", action="store_true", help="skip the slow gdal2tiles case")
    ap.add_argument("--scaling-size", type=int, default=None,
                    help="image side of the scaling case (default: --size)")
    ap.add_argument("--flat-sizes", default="16384,65536", help="image sides of the flat case")
    ap.add_argument("--flat-repeat", type=int, default=1, help="runs of each tool per size in the flat case")
    ap.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it")
    args = ap.parse_args()
    cases = parse_cases(args.cases, args.no_gdal2tiles)
    print(code_version())

    work = args.keep or Path(tempfile.mkdtemp(prefix="pyramidd-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    out = work / "out"
    start_outputs(out)
    w = str(args.workers)
    vips_env = {"VIPS_CONCURRENCY": w}
    src = work / f"in{args.size}.tif"
    scaling_size = args.scaling_size or args.size
    scaling_src = work / f"in{scaling_size}.tif"
    inputs = {src: args.size} if {"dzi", "xyz", "tms"} & set(cases) else {}
    if "scaling" in cases:
        inputs[scaling_src] = scaling_size
    for path, side in inputs.items():
        if not path.exists():
            print(f"writing {path} ({side}x{side} RGB tiled TIFF)", flush=True)
            make_input(path, side, args.compression)
        print(f"input {path}: {path.stat().st_size / MIB:.0f} MiB; workers {w}; median of {args.repeat}")
    if inputs:
        # Every run's output stays until the end: PNG tiles take about the input's size
        # on disk, JPEG q85 tiles about a tenth.
        runs = sum(OUTPUT_RUNS.get(c, 0) for c in cases if c != "scaling") * args.repeat
        png = sum(OUTPUT_RUNS.get(c, 0) for c in cases if c in ("xyz", "tms")) * args.repeat
        need = src.stat().st_size * (png * 12 + (runs - png) * 2) // 10 if src in inputs else 0
        if "scaling" in cases:
            need += scaling_src.stat().st_size * OUTPUT_RUNS["scaling"] * args.repeat * 2 // 10
        ensure_space(work, need)

    def pyramidd(path: Path, *options: str, workers: str = w) -> list[str]:
        return [*PYRAMIDD, "build", str(path), f"{OUT}/p", "--workers", workers, *options]

    if "dzi" in cases:
        run_case(
            "DZI 254/1 JPEG q85",
            {
                "pyramidd": pyramidd(src, "--quality", "85"),
                "vips": ["vips", "dzsave", str(src), f"{OUT}/v", "--tile-size", "254", "--overlap", "1",
                         "--suffix", ".jpg[Q=85]"],
            },
            {"vips": vips_env}, out, args.repeat,
        )
    if "jpeg" in cases:
        jpeg = work / f"in{args.size}.jpg"
        if not jpeg.exists():
            print(f"writing {jpeg} ({args.size}x{args.size} baseline JPEG, quality 90)", flush=True)
            make_jpeg(jpeg, args.size)
        run_case(
            f"DZI 254/1 JPEG q85 from a baseline JPEG ({jpeg.stat().st_size / MIB:.0f} MiB)",
            {
                "pyramidd": pyramidd(jpeg, "--quality", "85"),
                "vips": ["vips", "dzsave", str(jpeg), f"{OUT}/v", "--tile-size", "254", "--overlap", "1",
                         "--suffix", ".jpg[Q=85]"],
            },
            {"vips": vips_env}, out, args.repeat,
        )
    if "xyz" in cases:
        run_case(
            "XYZ 256 PNG",
            {
                "pyramidd": pyramidd(src, "--layout", "xyz", "--suffix", "png"),
                "vips": ["vips", "dzsave", str(src), f"{OUT}/v", "--layout", "google", "--suffix", ".png"],
            },
            {"vips": vips_env}, out, args.repeat,
        )
    if "tms" in cases:
        gdal2tiles = shutil.which("gdal2tiles.py") or "gdal2tiles"
        run_case(
            "TMS 256 PNG (gdal2tiles: one run)",
            {
                "pyramidd": pyramidd(src, "--layout", "tms", "--suffix", "png"),
                "gdal2tiles": [gdal2tiles, "-q", "-p", "raster", "-w", "none", f"--processes={w}",
                               str(src), f"{OUT}/g"],
            },
            {}, out, args.repeat,
        )
    if "scaling" in cases:
        one = run_case(
            f"scaling: DZI JPEG q85 from the {scaling_size}² TIFF, 1 worker vs {w}",
            {
                "pyramidd": pyramidd(scaling_src, "--quality", "85"),
                "pyramidd-1": pyramidd(scaling_src, "--quality", "85", workers="1"),
            },
            # Unobserved, as the machine's controls below: a memory sampler's CPU
            # would come out of the workers' with two (0.28 s of a 1.98 s 16384²
            # build in seven interleaved rounds) and out of an idle core with one.
            {}, out, args.repeat, memory=False,
        )
        print(f"  speed-up from 1 to {w} workers: {one['pyramidd-1'].wall / one['pyramidd'].wall:.2f}x")
        tiny = work / "in256.tif"
        if not tiny.exists():
            make_input(tiny, 256, args.compression)
        fixed = run_case(
            "scaling, fixed part: the same commands from a 256² TIFF (a dozen tiles: start-up, plan, page, commit)",
            {
                "pyramidd": pyramidd(tiny, "--quality", "85"),
                "pyramidd-1": pyramidd(tiny, "--quality", "85", workers="1"),
            },
            {}, out, args.repeat * 3, memory=False,
        )
        print(f"  the rest of the {scaling_size}² build (whole minus fixed part), 1 to {w} workers: "
              f"{rest_speedup(one, fixed, 'pyramidd-1', 'pyramidd'):.2f}x", flush=True)
        warm_scaling(scaling_src, int(w), args.repeat, out, quality=85)
        machine_scaling(int(w), args.repeat, pyramidd(scaling_src, "--quality", "85", workers="1"), out)
    if "flat" in cases:
        sizes = sorted(int(v) for v in args.flat_sizes.split(","))
        flat_case(work, out, sizes, w, args.flat_repeat)
    finish_outputs(out)
    if args.keep is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
