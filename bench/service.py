"""Warm-path benchmark: the running service against ``vips dzsave`` once per file, in one run.

    .venv/bin/python bench/service.py [--count 200] [--side 2048] [--format jpg] [--repeat 5]

Generates ``--count`` textured ``--side``² inputs (baseline JPEG quality 90 by
default, or ``--format png``), each with its own noise, then round after round:

- ``service``: starts the real service, ``pyramidd run --config FILE``, with one
  watch building DZI 254/1 JPEG q75 (the profile's defaults), ``workers`` and
  ``jobs`` 2, ``settle_time = 0`` and ``min_age = 0`` (the inputs arrive by an atomic
  rename, so nothing is written in place), and waits for READY=1. Then it renames
  every input from a staging folder on the same filesystem into the drop folder and
  times from the first rename until all of them are in ``done/`` (polled every
  20 ms). Peak memory (PSS) and CPU time of the service's process tree over that
  time are measured from outside, as ``measure.py`` does; memory at rest, after
  READY=1, is shown too. Start-up is not timed: the pool is warm by then.
- ``vips``: ``vips dzsave`` (VIPS_CONCURRENCY=2, ``--tile-size 254 --overlap 1
  --suffix .jpg[Q=75]``) once per file, one after the other, as one shell script
  measured by ``measure.py``.

Once, for context: ``pyramidd build --workers 2`` once per file, one after the other
(``--no-oneshot`` skips it; it takes about ten times as long as the rest).

The ratio printed is service ÷ vips (below 1: the service is faster or smaller).
Without ``--keep`` the work folder is deleted at the end.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from measure import (Measurement, code_version, finish_outputs, fresh_folder, measure, median, settle,
                     start_outputs)
from raster import ensure_space, texture_image

from pyramidd.memory import descendants, tree_bytes
from pyramidd.service.testing import ServiceProcess, pyramidd_command, write_config

MIB = 1 << 20
TICKS = os.sysconf("SC_CLK_TCK")


def make_inputs(folder: Path, count: int, side: int, fmt: str) -> list[Path]:
    """``count`` textured inputs, each with its own noise (kept if already there)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"img{i:04d}.{fmt}" for i in range(count)]
    for i, path in enumerate(paths):
        if path.exists():
            continue
        image = Image.fromarray(texture_image(side, seed=i))
        part = path.with_name(path.name + ".part")
        if fmt == "jpg":
            image.save(part, "JPEG", quality=90, subsampling="4:2:0")
        else:
            image.save(part, "PNG")
        part.rename(path)
    return paths


def tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid``'s process tree, with the children each process has reaped."""
    total = 0
    for p in descendants(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # utime, stime, cutime, cstime: fields 14-17 of stat(5), counted after "(comm)".
        total += sum(int(v) for v in fields[11:15])
    return total / TICKS


@dataclass
class ServiceRun:
    """One drop of every input into a running service."""

    measurement: Measurement
    idle: int


def count_tiles(folder: Path) -> int:
    """JPEG tiles under ``folder`` (viewer pages and descriptors are not counted)."""
    return sum(1 for _, _, files in os.walk(folder) for f in files if f.endswith((".jpg", ".jpeg")))


def run_service(root: Path, inputs: list[Path], workers: int, jobs: int, timeout: float,
                memory: bool = True, warmup: Path | None = None, **options: object) -> ServiceRun:
    """Start the service in ``root`` (a new folder), drop ``inputs`` in, time until all are done.

    ``options`` go into the watch's table (e.g. ``quality=85``). ``memory`` False:
    no memory sampler while it builds (peak 0), whose page-table walks would take CPU
    from the workers (see ``measure.measure``). ``warmup``: an input built first and
    not timed, so that the workers have imported what a build's first task imports
    and grown their heaps, as in a service that has built before.
    """
    drop, staging = root / "drop", root / "staging"
    for folder in (drop, staging):
        folder.mkdir(parents=True)
    for path in inputs:  # same filesystem: a rename into the drop folder is atomic
        os.link(path, staging / path.name)
    warmup_name = None
    if warmup is not None:
        warmup_name = f"warmup-{warmup.name}"
        os.link(warmup, staging / warmup_name)
    config = write_config(
        root / "pyramidd.toml",
        [{"name": "bench", "folder": str(drop), "output": str(root / "out"), "patterns": ["*"],
          "settle_time": 0.0, "min_age": 0.0, **options}],
        state_dir=str(root / "state"), workers=workers, jobs=jobs,
        http={"bind": "127.0.0.1:0"}, log={"format": "json", "level": "info"},
    )
    service = ServiceProcess(root, config)
    try:
        service.start(ready_timeout=60)
        assert service.proc is not None
        pid = service.proc.pid
        idle = tree_bytes(pid)
        if warmup_name is not None:
            drop_and_wait(service, [warmup_name], timeout, memory=False)
        cpu0 = tree_cpu(pid)
        start = time.monotonic()
        peak = drop_and_wait(service, [p.name for p in inputs], timeout, memory)
        wall = time.monotonic() - start
        cpu = tree_cpu(pid) - cpu0
        service.signal(signal.SIGTERM)
        service.wait(60)
        return ServiceRun(Measurement(wall, cpu, peak), idle)
    finally:
        service.close()


def drop_and_wait(service: ServiceProcess, names: list[str], timeout: float, memory: bool) -> int:
    """Rename ``names`` from the service's ``staging`` folder into its drop folder and
    wait until they are all in ``done/``; return the peak memory of the service's
    process tree meanwhile (0 when ``memory`` is False). Any failure raises."""
    assert service.proc is not None
    pid = service.proc.pid
    drop, staging = service.root / "drop", service.root / "staging"
    done, failed = drop / "done", drop / "failed"
    before = len(os.listdir(done)) if done.exists() else 0
    start = time.monotonic()
    for name in names:
        os.rename(staging / name, drop / name)
    peak, n_done, n_failed = 0, 0, 0
    while n_done + n_failed < len(names):
        if memory:
            peak = max(peak, tree_bytes(pid))
        n_done = (len(os.listdir(done)) if done.exists() else 0) - before
        n_failed = sum(1 for n in os.listdir(failed) if not n.endswith(".json")) if failed.exists() else 0
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{n_done} of {len(names)} done after {timeout} s:\n"
                               f"{service.log_text()[-3000:]}")
        time.sleep(0.02)
    if n_failed:
        errors = [p.read_text() for p in sorted(failed.glob("*.json"))[:3]]
        raise RuntimeError(f"{n_failed} inputs failed, e.g.:\n" + "\n".join(errors))
    return peak


def script(path: Path, lines: list[list[str]]) -> Path:
    """A shell script running each command in turn, stopping at the first failure."""
    path.write_text("set -e\n" + "".join(shlex.join(cmd) + "\n" for cmd in lines))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=200, help="inputs dropped at once (default 200)")
    ap.add_argument("--side", type=int, default=2048, help="input side in pixels (default 2048)")
    ap.add_argument("--format", choices=("jpg", "png"), default="jpg", help="input format (default jpg)")
    ap.add_argument("--repeat", type=int, default=5, help="rounds of service and vips (default 5)")
    ap.add_argument("--workers", type=int, default=2, help="service render workers, VIPS_CONCURRENCY")
    ap.add_argument("--jobs", type=int, default=2, help="builds the service runs at once (default 2)")
    ap.add_argument("--no-oneshot", action="store_true", help="skip pyramidd build once per file")
    ap.add_argument("--timeout", type=float, default=1800, help="give up on a service round after this")
    ap.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it")
    args = ap.parse_args()

    print(code_version())
    work = args.keep or Path(tempfile.mkdtemp(prefix="pyramidd-bench-service-"))
    work.mkdir(parents=True, exist_ok=True)
    inputs_dir = work / f"inputs-{args.count}x{args.side}-{args.format}"
    print(f"inputs: {args.count} textured {args.side}² {'baseline JPEG q90' if args.format == 'jpg' else 'PNG'}"
          f" in {inputs_dir}", flush=True)
    inputs = make_inputs(inputs_dir, args.count, args.side, args.format)
    size = sum(p.stat().st_size for p in inputs)
    print(f"  {size / MIB:.0f} MiB in all; DZI 254/1 JPEG q75; workers {args.workers}, jobs {args.jobs};"
          f" median of {args.repeat}", flush=True)

    w = str(args.workers)
    # Every round writes into new folders, all deleted at the end (see measure.fresh_folder).
    runs = work / "runs"
    start_outputs(runs)
    # JPEG q75 tiles of these textures take about a fifth of the pixels' bytes.
    outputs = 2 * args.repeat + (0 if args.no_oneshot else 1)
    ensure_space(work, outputs * args.count * args.side * args.side * 3 // 5)
    service_runs: list[ServiceRun] = []
    vips_runs: list[Measurement] = []
    tiles: dict[str, int] = {}
    for round_ in range(args.repeat):
        print(f"round {round_ + 1}/{args.repeat} (load average {os.getloadavg()[0]:.2f})", flush=True)
        root = fresh_folder(runs)
        settle()
        service_runs.append(run_service(root, inputs, args.workers, args.jobs, args.timeout))
        tiles["service"] = count_tiles(root / "out")
        out = fresh_folder(runs)
        vips_script = script(work / "vips.sh", [
            ["vips", "dzsave", str(p), str(out / p.stem), "--tile-size", "254", "--overlap", "1",
             "--suffix", ".jpg[Q=75]"] for p in inputs])
        settle()
        vips_runs.append(measure(["sh", str(vips_script)], {"VIPS_CONCURRENCY": w}))
        tiles["vips"] = count_tiles(out)
        print(f"  service {service_runs[-1].measurement.wall:.2f} s, vips {vips_runs[-1].wall:.2f} s",
              flush=True)
    oneshot = None
    if not args.no_oneshot:
        print(f"pyramidd build once per file (load average {os.getloadavg()[0]:.2f})", flush=True)
        out = fresh_folder(runs)
        settle()
        oneshot = measure(["sh", str(script(work / "oneshot.sh", [
            [*pyramidd_command(), "build", str(p), str(out / p.stem), "--workers", w, "--quality", "75"]
            for p in inputs]))])
        tiles["oneshot"] = count_tiles(out)

    service = median([r.measurement for r in service_runs])
    vips = median(vips_runs)
    n = len(inputs)
    print(f"\nwarm path: {n} x {args.side}² {args.format} -> DZI 254/1 JPEG q75, median of {args.repeat}")
    print(f"  {'run':<26}{'wall s':>9}{'cpu s':>9}{'peak MiB':>10}{'s/file':>9}{'wall ratio':>12}"
          f"{'peak ratio':>12}")
    rows = [("service (warm)", service), ("vips dzsave per file", vips)]
    if oneshot is not None:
        rows.append(("pyramidd build per file (1)", oneshot))
    for name, m in rows:
        ratio = "" if m is vips else f"{m.wall / vips.wall:>12.2f}{m.peak / vips.peak:>12.2f}"
        print(f"  {name:<26}{m.wall:>9.2f}{m.cpu:>9.2f}{m.peak / MIB:>10.0f}{m.wall / n:>9.3f}{ratio}")
    print(f"  service at rest after READY=1: {statistics.median(r.idle for r in service_runs) / MIB:.0f} MiB;"
          f" service walls {', '.join(f'{r.measurement.wall:.1f}' for r in service_runs)} s;"
          f" vips walls {', '.join(f'{r.wall:.1f}' for r in vips_runs)} s")
    print(f"  tiles written: {', '.join(f'{k} {v}' for k, v in tiles.items())}")
    print("  (ratio = pyramidd / vips; below 1 means pyramidd is faster or smaller)")
    finish_outputs(runs)
    if args.keep is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
