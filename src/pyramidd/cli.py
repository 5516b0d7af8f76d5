"""The ``pyramidd`` command: ``build`` (one-shot), ``plugins``, and the service commands."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from . import __version__, launch
from .errors import InputError, PyramiddError
from .fastexit import exit_now
from .memory import PeakSampler
from .options import BuildOptions, parse_colour
from .progress import ProgressBar, human_bytes, human_seconds


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
        if w < 1 or h < 1:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 4000x3000") from None
    return w, h


def _bytes(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    t = text.strip().lower().removesuffix("ib").removesuffix("b")
    try:
        if t and t[-1] in units:
            return int(float(t[:-1]) * units[t[-1]])
        return int(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 512M or 2G") from None


def add_build_command(sub: Any) -> None:
    """``pyramidd build INPUT OUTPUT``: defaults follow ``vips dzsave``."""
    p = sub.add_parser(
        "build",
        help="build one pyramid now",
        description="Build the tile pyramid of INPUT at OUTPUT. Defaults follow vips dzsave: "
        "Deep Zoom, tiles of 254 with overlap 1, JPEG.",
    )
    p.add_argument("input", type=Path, help="image, TIFF, .npy, or laid-out graph")
    p.add_argument("output", type=Path, help="output name (DZI: OUTPUT.dzi + OUTPUT_files/)")
    p.add_argument("--layout", default=None,
                   help="dzi (default), tms, xyz, or a plugin's layout; graphs are graph-json")
    p.add_argument("--tile-size", type=int, default=None, help="tile edge in pixels (DZI 254, else 256)")
    p.add_argument("--overlap", type=int, default=None, help="overlap in pixels (DZI 1, else 0)")
    p.add_argument("--suffix", default="jpg", help="tile format: jpg, png or webp (default jpg)")
    p.add_argument("--quality", type=int, default=75, help="JPEG/WebP quality 1-100 (default 75)")
    p.add_argument("--resampler", default="box", help="box (default), nearest, smooth, or a plugin's")
    p.add_argument("--background", default="white", help="colour for padding and flattening alpha")
    p.add_argument("--workers", type=int, default=0, help="render worker processes (default: one per CPU)")
    p.add_argument("--max-pixels", type=int, default=BuildOptions.max_pixels, help="refuse larger images")
    p.add_argument("--memory-budget", type=_bytes, default=None, help="memory budget, e.g. 1G (default: half the available memory);"
                   " PNG and JPEG images over half of it are built in bands, other images"
                   " decoded whole over it are refused, graphs shed bags to disk")
    p.add_argument("--replace", action="store_true", help="replace OUTPUT if it exists")
    p.add_argument("--disable-plugin", action="append", default=[], metavar="NAME",
                   help="do not load this plugin (repeatable)")
    warp = p.add_argument_group("registration (warp an image through ground control points)")
    warp.add_argument("--gcps", type=Path, default=None, help=".points / .aux.xml / VRT file of GCPs")
    warp.add_argument("--order", type=int, choices=(1, 2, 3), default=None, help="polynomial order")
    warp.add_argument("--warp-resampler", choices=("near", "bilinear", "cubic"), default="near")
    warp.add_argument("--output-size", type=_size, default=None, metavar="WxH")
    graph = p.add_argument_group("graph pyramids (inputs a graph source reads)")
    graph.add_argument("--bag-size", type=int, default=None, help="objects in a bag (256)")
    graph.add_argument("--bags-per-leaf", type=int, default=None, help="bags a leaf holds before it splits (8)")
    graph.add_argument("--max-depth", type=int, default=None, help="deepest quadtree level (18)")
    graph.add_argument("--importance", default=None,
                       help="what sparse levels keep first: degree (default) or a node attribute")
    graph.add_argument("--edge-importance", default=None, help="an edge attribute ranking edges")
    graph.add_argument("--seed", type=int, default=None, help="seed of the sparse sampling (0)")
    graph.add_argument("--bad-data", choices=("error", "skip"), default=None,
                       help="nodes without positions, unknown endpoints...: stop, or count and skip")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=cmd_build)


#: ``build`` arguments that pass through to the graph build as its options.
GRAPH_OPTIONS = ("bag_size", "bags_per_leaf", "max_depth", "importance", "edge_importance",
                 "seed", "bad_data")


def build_options(args: argparse.Namespace) -> BuildOptions:
    """The :class:`BuildOptions` of parsed ``build`` arguments."""
    extra: dict[str, Any] = {"replace": args.replace}
    if args.memory_budget is not None:
        extra["memory_budget"] = args.memory_budget
    extra.update({k: getattr(args, k) for k in GRAPH_OPTIONS if getattr(args, k) is not None})
    if args.gcps is not None or args.order is not None or args.output_size is not None:
        extra["warp"] = {
            "gcps": str(args.gcps) if args.gcps else None,
            "order": args.order,
            "resampler": args.warp_resampler,
            "output_size": args.output_size,
        }
    return BuildOptions(
        layout=args.layout or "dzi",
        tile_size=args.tile_size,
        overlap=args.overlap,
        suffix=args.suffix.lower().lstrip("."),
        quality=args.quality,
        resampler=args.resampler,
        background=parse_colour(args.background),
        workers=args.workers,
        max_pixels=args.max_pixels,
        extra=extra,
    )


def _build_options_of(args: argparse.Namespace) -> BuildOptions:
    """The checked options of ``pyramidd build``; a plugin picks the layout if none is given."""
    if args.layout is None:
        from . import plugins

        hook = plugins.load(args.disable_plugin).pm.hook
        args.layout = hook.pyramidd_choose_layout(path=args.input, options=vars(args).copy())
    options = build_options(args)
    options.check()
    return options


def _fork_server(args: argparse.Namespace) -> launch.Started:
    """The fork server of a build's pool, started before anything heavy is imported
    here: its imports are the longest path to the first subtree. The one started
    before the arguments were parsed if it is the right one."""
    early = getattr(args, "early_fork_server", None)
    if early is not None:
        if early[0] == tuple(args.disable_plugin):
            return early[1]
        launch.stop(early[1])
    return launch.start_fork_server(args.disable_plugin)


def cmd_build(args: argparse.Namespace) -> int:
    """Run one build, with a progress bar on a terminal and one summary line at the end."""
    if not args.input.exists():
        raise InputError(f"{args.input}: no such file")
    if args.input.is_dir() and not (args.input / "nodes.csv").is_file():
        raise InputError(f"{args.input}: is a folder, not a file (a folder is read only as a"
                         " graph's nodes.csv and edges.csv)")
    server = _fork_server(args)

    import anyio

    from .pool import WorkerPool

    bar = ProgressBar()

    async def main() -> dict[str, Any]:
        # The workers are started first and not waited for: they import numpy, OpenCV
        # and the plugins (0.2-0.3 s) while this process does the same, reads the
        # options and opens the input. Tasks queue behind a worker still starting.
        async with WorkerPool(args.workers, disabled_plugins=args.disable_plugin,
                              wait_started=False, fork_server=server) as pool:
            from .engine import build

            options = _build_options_of(args)
            summary = await build(args.input, args.output, options, pool=pool, progress=bar)
            # Once more with the workers alive: a build can end before the next sample.
            memory.sample()
            return summary.as_dict()

    # Twice a second: one PSS sample of the tree costs about 15 ms of CPU in the
    # kernel with a band or two of shared memory mapped, which at 10 Hz took 15 % of a
    # core from the build.
    with PeakSampler(interval=0.5) as memory:
        try:
            summary = anyio.run(main)
        finally:
            bar.close()
    if summary.get("source_report"):
        print(summary["source_report"])
    if summary.get("source_counters"):
        print(counters_line(summary["source_counters"]))
    print(summary_line(summary, memory.peak))
    return 0


def counters_line(counters: dict[str, Any]) -> str:
    """``pyramidd: source: bytes read 1.2 GiB, fallbacks 0, ...`` from a source's counters."""
    parts = []
    for key, value in counters.items():
        label = key.replace("_", " ")
        if key.startswith("bytes"):
            parts.append(f"{label} {human_bytes(value)}")
        elif isinstance(value, float):
            parts.append(f"{label} {value:.3g}")
        else:
            parts.append(f"{label} {value:,}")
    return "pyramidd: source: " + ", ".join(parts)


def summary_line(summary: dict[str, Any], peak: int) -> str:
    """``pyramidd: OUT: 15 levels, 5730 tiles, 98.2 MiB, 4.1s, peak memory 180.3 MiB``."""
    parts = [f"pyramidd: {summary.get('output')}:"]
    if "levels" in summary:
        parts.append(f"{summary['levels']} levels,")
    if "tiles" in summary:
        parts.append(f"{summary['tiles']} tiles,")
    for key in ("nodes", "edges", "leaves"):
        if key in summary:
            parts.append(f"{summary[key]} {key},")
    seconds = summary.get("seconds", 0.0)
    parts.append(f"{human_bytes(summary.get('bytes', 0))},")
    parts.append(f"{human_seconds(seconds) if seconds >= 10 else f'{seconds:.2f}s'},")
    parts.append(f"peak memory {human_bytes(peak)} (process tree)")
    return " ".join(parts)


def cmd_plugins(args: argparse.Namespace) -> int:
    """List loaded plugins and the formats each registered."""
    from . import plugins

    loaded = plugins.load(args.disable_plugin)
    by_plugin: dict[str, list[str]] = {}
    for entry in loaded.registry.entries.values():
        by_plugin.setdefault(entry.plugin, []).append(f"{entry.kind} {entry.name}")
    for name, plugin in sorted(loaded.pm.list_name_plugin()):
        module = "disabled" if plugin is None else getattr(plugin, "__name__", type(plugin).__name__)
        print(f"{name} ({module})")
        for item in sorted(by_plugin.get(name, [])):
            print(f"    {item}")
    return 0


def make_parser() -> argparse.ArgumentParser:
    """The full argument parser."""
    parser = argparse.ArgumentParser(
        prog="pyramidd", description="Tile pyramids from big images and laid-out graphs."
    )
    parser.add_argument("--version", action="version", version=f"pyramidd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_build_command(sub)
    p = sub.add_parser("plugins", help="list loaded plugins and their formats")
    p.add_argument("--disable-plugin", action="append", default=[], metavar="NAME")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=cmd_plugins)
    try:
        from .service.cli import add_commands
    except ImportError:
        pass
    else:
        add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None,
         early_fork_server: tuple[tuple[str, ...], launch.Started] | None = None) -> int:
    """Entry point of the ``pyramidd`` command (``argv`` None: the process's own arguments).

    Run as the command (``argv`` None), ``pyramidd build`` ends its process as soon
    as it has printed its summary, without the interpreter's teardown (see
    :func:`~pyramidd.fastexit.exit_now`); called with arguments, as from Python, it returns.
    ``early_fork_server``: a fork server :mod:`pyramidd.command` started before the
    arguments were parsed, with the plugins it disables, for ``build`` to use or stop;
    if the command fails before, the server ends with this process (it dies with its
    parent, and leaves at the end of its socket).
    """
    # Before numpy is imported: OpenBLAS would start a thread per CPU that spins for
    # tens of milliseconds of CPU at import, taken from the workers starting beside
    # this process. Nothing here does linear algebra worth a thread pool.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    args = make_parser().parse_args(argv)
    args.early_fork_server = early_fork_server
    code = _run(args)
    if argv is None and args.func is cmd_build:
        exit_now(code)
    return code


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.func(args) or 0)
    except PyramiddError as exc:
        if getattr(args, "debug", False):
            raise
        print(f"pyramidd: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        output = getattr(args, "output", None)
        tail = f"; nothing was written at {output}" if output is not None else ""
        print(f"pyramidd: interrupted{tail}", file=sys.stderr)
        return 130
    except BaseExceptionGroup as group:  # anyio wraps errors raised inside task groups
        user = _first_user_error(group)
        if user is None or getattr(args, "debug", False):
            raise
        print(f"pyramidd: error: {user}", file=sys.stderr)
        return 2


def _first_user_error(group: BaseExceptionGroup) -> PyramiddError | None:
    for exc in group.exceptions:
        if isinstance(exc, PyramiddError):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            found = _first_user_error(exc)
            if found is not None:
                return found
    return None


if __name__ == "__main__":
    sys.exit(main())
