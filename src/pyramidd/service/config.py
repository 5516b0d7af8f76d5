"""The service's TOML config: parsing and validation, as plain functions over plain data.

Every problem names the key it is about (``watch[1].tile_size``) and what would be
accepted, and all problems of a file are reported at once, so an operator fixes a
config in one pass. The same function checks a config at start and on reload (SIGHUP),
where a bad file leaves the running config in force.
"""

from __future__ import annotations

import fnmatch
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import OptionError
from ..options import SUFFIXES, BuildOptions, parse_colour

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2,
          "mib": 1024**2, "g": 1000**3, "gb": 1000**3, "gib": 1024**3, "t": 1000**4,
          "tb": 1000**4, "tib": 1024**4}


class ConfigError(OptionError):
    """The config file is missing, not TOML, or has unknown keys or bad values."""

    kind = "bad-config"


@dataclass(frozen=True)
class HttpConfig:
    """Where the status server listens. Port 0 picks a free port (written to the state dir)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8765


@dataclass(frozen=True)
class LogConfig:
    """Log level and format (``auto``: JSON unless stderr is a terminal)."""

    level: str = "info"
    format: str = "auto"


@dataclass(frozen=True)
class WatchConfig:
    """One drop folder and the profile its files are built with."""

    name: str
    folder: Path
    output: Path
    patterns: tuple[str, ...] = ("*",)
    ignore: tuple[str, ...] = ()
    settle_time: float = 5.0
    min_age: float = 2.0
    done_marker: bool = False
    #: Endings of companion files that travel with an input (``NAME.points`` GCPs for
    #: warping): never inputs themselves, claimed and moved together with ``NAME``.
    sidecars: tuple[str, ...] = (".points", ".aux.xml")
    on_success: str = "move"
    options: BuildOptions = field(default_factory=BuildOptions)

    @property
    def processing(self) -> Path:
        """Where claimed inputs wait while they are built."""
        return self.folder / "processing"

    @property
    def done(self) -> Path:
        """Where inputs go after a successful build (unless ``on_success = "delete"``)."""
        return self.folder / "done"

    @property
    def failed(self) -> Path:
        """Where inputs go after a failed build, each beside its ``NAME.error.json``."""
        return self.folder / "failed"


@dataclass(frozen=True)
class ServiceConfig:
    """The whole config of one service process."""

    path: Path | None
    state_dir: Path
    watches: tuple[WatchConfig, ...]
    workers: int = 0
    jobs: int = 2
    queue_size: int = 64
    retries: int = 2
    stop_timeout: float = 30.0
    rescan_interval: float = 30.0
    memory_budget: int = 1024**3
    http: HttpConfig = field(default_factory=HttpConfig)
    log: LogConfig = field(default_factory=LogConfig)
    #: Plugins (entry point names) neither the service nor its workers load.
    disabled_plugins: tuple[str, ...] = ()

    def watch(self, name: str) -> WatchConfig:
        """The watch called ``name``; :class:`KeyError` if there is none."""
        for w in self.watches:
            if w.name == name:
                return w
        raise KeyError(name)


# Keys that only take effect at start; a reload that changes them says so.
RESTART_KEYS = ("state_dir", "workers", "jobs", "queue_size", "http", "disabled_plugins")

_GLOBAL_KEYS = {
    "state_dir", "workers", "jobs", "queue_size", "retries", "stop_timeout",
    "rescan_interval", "memory_budget", "http", "log", "watch", "disabled_plugins",
}
_PROFILE_KEYS = {
    "layout", "tile_size", "overlap", "suffix", "quality", "resampler", "background",
    "max_pixels", "warp",
}
#: Keys of a profile's ``warp`` table (see docs/warp.md).
_WARP_KEYS = {
    "gcps", "order", "resampler", "output_size", "fill", "cache_mb", "band_rows",
    "thrash_threshold", "thrash_window", "piece",
}
_WATCH_KEYS = {
    "name", "folder", "output", "patterns", "ignore", "settle_time", "min_age",
    "done_marker", "on_success", "sidecars",
} | _PROFILE_KEYS
_HTTP_KEYS = {"enabled", "bind"}
_LOG_KEYS = {"level", "format"}
_LEVELS = ("debug", "info", "warning", "error")


class _Checker:
    """Collects problems so that all of them are reported together."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def bad(self, key: str, problem: str) -> None:
        self.problems.append(f"{key}: {problem}")

    def unknown(self, table: dict[str, Any], allowed: set[str], prefix: str) -> None:
        for key in table:
            if key not in allowed:
                hint = _close(key, allowed)
                self.bad(prefix + key, "unknown key" + (f" (did you mean {hint!r}?)" if hint else ""))

    def get(self, table: dict[str, Any], key: str, kind: type | tuple[type, ...], default: Any,
            prefix: str, what: str) -> Any:
        if key not in table:
            return default
        value = table[key]
        # bool is an int in Python; a config that says `workers = true` is a mistake.
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            self.bad(prefix + key, f"must be {what}, got {value!r}")
            return default
        if not isinstance(value, kind):
            self.bad(prefix + key, f"must be {what}, got {value!r}")
            return default
        return value


def _close(key: str, allowed: set[str]) -> str | None:
    import difflib

    match = difflib.get_close_matches(key, sorted(allowed), n=1)
    return match[0] if match else None


def parse_size(value: int | str) -> int:
    """Bytes from ``1073741824``, ``"512MiB"``, ``"2 GB"``; :class:`ValueError` otherwise."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value <= 0:
            raise ValueError("must be positive")
        return value
    if not isinstance(value, str):
        raise ValueError("must be a number of bytes or a string like \"512MiB\"")
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", value)
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError(f"{value!r} is not a size: use bytes or e.g. \"512MiB\", \"2GB\"")
    size = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    if size <= 0:
        raise ValueError("must be positive")
    return size


def parse_bind(value: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:port`` for IPv6) to a pair; :class:`ValueError` otherwise."""
    m = re.fullmatch(r"\[([^\]]+)\]:(\d+)|([^:\[\]]+):(\d+)", value.strip())
    if not m:
        raise ValueError(f"{value!r} is not host:port (e.g. \"127.0.0.1:8765\")")
    host = m.group(1) or m.group(3)
    port = int(m.group(2) or m.group(4))
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is out of range")
    return host, port


def _path(value: str, base: Path) -> Path:
    return Path(os.path.normpath(base / Path(value).expanduser()))


def _known_names(kind: str) -> list[str]:
    """Names of registered formats of ``kind``, or [] if plugins cannot be asked here."""
    try:
        from .. import plugins

        return sorted(e.name for e in plugins.load().registry.of_kind(kind))
    except Exception:  # a broken plugin is reported by the build that needs it
        return []


def _profile(c: _Checker, table: dict[str, Any], prefix: str) -> BuildOptions:
    base = BuildOptions()
    values: dict[str, Any] = {}
    layout = c.get(table, "layout", str, base.layout, prefix, "a layout name such as \"dzi\"")
    sinks = _known_names("sink")
    if sinks and layout not in sinks:
        c.bad(prefix + "layout", f"no layout called {layout!r} (choices: {', '.join(sinks)})")
    values["layout"] = layout
    values["tile_size"] = c.get(table, "tile_size", int, None, prefix, "a whole number of pixels")
    values["overlap"] = c.get(table, "overlap", int, None, prefix, "a whole number of pixels")
    suffix = c.get(table, "suffix", str, base.suffix, prefix, f"one of {', '.join(SUFFIXES)}")
    values["suffix"] = suffix
    values["quality"] = c.get(table, "quality", int, base.quality, prefix, "a number from 1 to 100")
    resampler = c.get(table, "resampler", str, base.resampler, prefix, "a resampler name")
    resamplers = _known_names("resampler")
    if resamplers and resampler not in resamplers:
        c.bad(prefix + "resampler",
              f"no resampler called {resampler!r} (choices: {', '.join(resamplers)})")
    values["resampler"] = resampler
    if "background" in table:
        bg = table["background"]
        if not isinstance(bg, str):
            c.bad(prefix + "background", f"must be a colour such as \"#ffffff\", got {bg!r}")
        else:
            try:
                values["background"] = parse_colour(bg)
            except OptionError:
                c.bad(prefix + "background",
                      f"{bg!r} is not a colour: use #rrggbb, r,g,b or a colour name")
    values["max_pixels"] = c.get(table, "max_pixels", int, base.max_pixels, prefix,
                                 "a positive whole number")
    if "warp" in table:
        warp = _warp(c, table["warp"], prefix + "warp.", values)
        if warp is not None:
            values["extra"] = {"warp": warp}
    options = BuildOptions(**values)
    try:
        options.check()
    except OptionError as exc:
        # check() speaks in command-line flags; the config speaks in keys.
        text = re.sub(r"--([a-z-]+)", lambda m: m.group(1).replace("-", "_"), str(exc))
        text = text.replace("the pixel limit", "max_pixels")
        c.problems.append(f"{prefix.rstrip('.')}: {text}")
    return options


def _warp(c: _Checker, warp: Any, prefix: str, values: dict[str, Any]) -> Any:
    """A profile's ``warp`` table (GCPs and warp options for every input of the watch),
    or ``false`` to build images with sidecars unwarped; checked as a build would."""
    if warp is False:
        return False
    if not isinstance(warp, dict):
        c.bad(prefix.rstrip("."), "must be a table such as {gcps = [[pixel, line, x, y], ...]}"
              " or false")
        return None
    c.unknown(warp, _WARP_KEYS, prefix)
    from ..warp import gcps as gcp_files
    from ..warp import source as warp_source

    gcps = warp.get("gcps")
    try:
        if isinstance(gcps, list):
            gcp_files.parse_inline(gcps, "gcps")
        elif gcps is not None and not isinstance(gcps, str):
            raise OptionError("must be a list of [pixel, line, x, y] or a GCP file's path")
        order = warp.get("order")
        if order is not None and order not in (1, 2, 3):
            raise OptionError(f"order must be 1, 2 or 3, got {order!r}")
        size = warp.get("output_size")
        if size is not None and not (
            isinstance(size, list) and len(size) == 2
            and all(isinstance(v, int) and v > 0 for v in size)
        ):
            raise OptionError(f"output_size must be [width, height], got {size!r}")
        warp_source.check_settings(warp, BuildOptions(**values))
    except OptionError as exc:
        c.bad(prefix.rstrip("."), re.sub(r"--([a-z-]+)", lambda m: m.group(1), str(exc)))
        return None
    return dict(warp)


def _number(c: _Checker, table: dict[str, Any], key: str, default: float, prefix: str,
            minimum: float, positive: bool = False) -> float:
    value = c.get(table, key, (int, float), default, prefix, "a number of seconds")
    if value < minimum or (positive and value <= 0):
        c.bad(prefix + key, f"must be {'more than' if positive else 'at least'} {minimum}, got {value}")
        return default
    return float(value)


def _int(c: _Checker, table: dict[str, Any], key: str, default: int, prefix: str,
         minimum: int) -> int:
    value = c.get(table, key, int, default, prefix, "a whole number")
    if value < minimum:
        c.bad(prefix + key, f"must be {minimum} or more, got {value}")
        return default
    return int(value)


def _patterns(c: _Checker, table: dict[str, Any], key: str, default: tuple[str, ...],
              prefix: str) -> tuple[str, ...]:
    value = table.get(key, list(default))
    if not isinstance(value, list) or not all(isinstance(p, str) and p for p in value):
        c.bad(prefix + key, f"must be a list of glob patterns such as [\"*.tif\"], got {value!r}")
        return default
    if any("/" in p for p in value):
        c.bad(prefix + key, "patterns match file names, not paths: remove the '/'")
    return tuple(value)


def _sidecars(c: _Checker, table: dict[str, Any], prefix: str) -> tuple[str, ...]:
    default = WatchConfig.__dataclass_fields__["sidecars"].default
    value = table.get("sidecars", list(default))
    if not isinstance(value, list) or not all(
            isinstance(v, str) and v.startswith(".") and len(v) > 1 and "/" not in v for v in value):
        c.bad(prefix + "sidecars", f"must be a list of name endings such as [\".points\"], got {value!r}")
        return default
    return tuple(value)


def _watch(c: _Checker, table: Any, index: int, base: Path) -> WatchConfig | None:
    prefix = f"watch[{index}]."
    if not isinstance(table, dict):
        c.bad(f"watch[{index}]", "must be a table: write [[watch]] followed by its keys")
        return None
    c.unknown(table, _WATCH_KEYS, prefix)
    folder = c.get(table, "folder", str, None, prefix, "the path of the drop folder")
    output = c.get(table, "output", str, None, prefix, "the path of the output folder")
    if "folder" not in table:
        c.bad(prefix + "folder", "missing: the drop folder this watch takes files from")
    if "output" not in table:
        c.bad(prefix + "output", "missing: the folder pyramids are written to")
    if folder is None or output is None:
        return None
    folder_p, output_p = _path(folder, base), _path(output, base)
    if output_p == folder_p or output_p.is_relative_to(folder_p):
        c.bad(prefix + "output", "must not be the drop folder or inside it (outputs would be "
              "taken as new inputs): choose a separate folder")
    name = c.get(table, "name", str, folder_p.name or "watch", prefix, "a name")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        c.bad(prefix + "name", f"{name!r} must be letters, digits, '_', '.' or '-'")
    on_success = c.get(table, "on_success", str, "move", prefix, "\"move\" or \"delete\"")
    if on_success not in ("move", "delete"):
        c.bad(prefix + "on_success", f"must be \"move\" or \"delete\", got {on_success!r}")
    return WatchConfig(
        name=name,
        folder=folder_p,
        output=output_p,
        patterns=_patterns(c, table, "patterns", ("*",), prefix),
        ignore=_patterns(c, table, "ignore", (), prefix),
        settle_time=_number(c, table, "settle_time", 5.0, prefix, 0.0),
        min_age=_number(c, table, "min_age", 2.0, prefix, 0.0),
        done_marker=c.get(table, "done_marker", bool, False, prefix, "true or false"),
        sidecars=_sidecars(c, table, prefix),
        on_success=on_success,
        options=_profile(c, table, prefix),
    )


def parse_config(data: dict[str, Any], path: Path | None = None,
                 base: Path | None = None) -> ServiceConfig:
    """Validate a parsed TOML document; :class:`ConfigError` listing every problem.

    Relative paths are taken from ``base`` (default: the current folder).
    """
    base = base or Path.cwd()
    c = _Checker()
    c.unknown(data, _GLOBAL_KEYS, "")
    state_dir = _path(c.get(data, "state_dir", str, "/var/lib/pyramidd", "", "a folder path"), base)
    workers = _int(c, data, "workers", 0, "", 0)
    jobs = _int(c, data, "jobs", 2, "", 1)
    queue_size = _int(c, data, "queue_size", 64, "", 1)
    retries = _int(c, data, "retries", 2, "", 0)
    stop_timeout = _number(c, data, "stop_timeout", 30.0, "", 0.0, positive=True)
    rescan = _number(c, data, "rescan_interval", 30.0, "", 0.0, positive=True)
    memory_budget = 1024**3
    if "memory_budget" in data:
        try:
            memory_budget = parse_size(data["memory_budget"])
        except ValueError as exc:
            c.bad("memory_budget", str(exc))

    disabled: tuple[str, ...] = ()
    raw_disabled = data.get("disabled_plugins", [])
    if not isinstance(raw_disabled, list) or not all(isinstance(n, str) and n for n in raw_disabled):
        c.bad("disabled_plugins", "must be a list of plugin names, e.g. [\"viewer\"]"
              " (pyramidd plugins lists them)")
    else:
        disabled = tuple(raw_disabled)

    http = HttpConfig()
    raw_http = data.get("http", {})
    if not isinstance(raw_http, dict):
        c.bad("http", "must be a table: [http]")
    else:
        c.unknown(raw_http, _HTTP_KEYS, "http.")
        enabled = c.get(raw_http, "enabled", bool, True, "http.", "true or false")
        host, port = http.host, http.port
        bind = c.get(raw_http, "bind", str, None, "http.", "\"host:port\"")
        if bind is not None:
            try:
                host, port = parse_bind(bind)
            except ValueError as exc:
                c.bad("http.bind", str(exc))
        http = HttpConfig(enabled=enabled, host=host, port=port)

    log = LogConfig()
    raw_log = data.get("log", {})
    if not isinstance(raw_log, dict):
        c.bad("log", "must be a table: [log]")
    else:
        c.unknown(raw_log, _LOG_KEYS, "log.")
        level = c.get(raw_log, "level", str, "info", "log.", f"one of {', '.join(_LEVELS)}")
        if level not in _LEVELS:
            c.bad("log.level", f"must be one of {', '.join(_LEVELS)}, got {level!r}")
            level = "info"
        fmt = c.get(raw_log, "format", str, "auto", "log.", "\"auto\", \"json\" or \"console\"")
        if fmt not in ("auto", "json", "console"):
            c.bad("log.format", f"must be \"auto\", \"json\" or \"console\", got {fmt!r}")
            fmt = "auto"
        log = LogConfig(level=level, format=fmt)

    watches: list[WatchConfig] = []
    raw_watches = data.get("watch", [])
    if not isinstance(raw_watches, list):
        c.bad("watch", "must be an array of tables: write [[watch]], not [watch]")
        raw_watches = []
    if not raw_watches:
        c.bad("watch", "no [[watch]] table: add one per drop folder")
    for i, table in enumerate(raw_watches):
        w = _watch(c, table, i, base)
        if w is not None:
            watches.append(w)
    seen_names: dict[str, int] = {}
    seen_folders: dict[Path, int] = {}
    for i, w in enumerate(watches):
        if w.name in seen_names:
            c.bad(f"watch[{i}].name", f"{w.name!r} is also the name of watch[{seen_names[w.name]}]:"
                  " names must differ")
        seen_names.setdefault(w.name, i)
        if w.folder in seen_folders:
            c.bad(f"watch[{i}].folder", f"{w.folder} is also watched by watch[{seen_folders[w.folder]}]")
        seen_folders.setdefault(w.folder, i)
        for other in watches:
            if other is not w and (w.output == other.folder or w.output.is_relative_to(other.folder)):
                c.bad(f"watch[{i}].output", f"is inside the drop folder of watch {other.name!r}")
    if c.problems:
        where = f"{path}: " if path else ""
        raise ConfigError(where + "bad config:\n  " + "\n  ".join(c.problems))
    return ServiceConfig(
        path=path, state_dir=state_dir, watches=tuple(watches), workers=workers, jobs=jobs,
        queue_size=queue_size, retries=retries, stop_timeout=stop_timeout,
        rescan_interval=rescan, memory_budget=memory_budget, http=http, log=log,
        disabled_plugins=disabled,
    )


def load_config(path: Path) -> ServiceConfig:
    """Read and validate the config at ``path``; :class:`ConfigError` says what to fix.

    Blocking (reads one small file): call it through ``anyio.to_thread`` from async code.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file (see config/pyramidd.toml for an example)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(data, path=path)


def matches(name: str, watch: WatchConfig) -> bool:
    """Whether a file name is one this watch takes (its patterns, minus its ignores)."""
    return any(fnmatch.fnmatchcase(name, p) for p in watch.patterns) and not any(
        fnmatch.fnmatchcase(name, p) for p in watch.ignore
    )


def restart_needed(old: ServiceConfig, new: ServiceConfig) -> list[str]:
    """Keys whose change a reload cannot apply (they take effect at the next start)."""
    return [k for k in RESTART_KEYS if getattr(old, k) != getattr(new, k)]
