"""The plugin manager and the registry of formats.

Built-in formats are ordinary plugins loaded through the ``pyramidd`` entry point
group, exactly as a third party's. ``PYRAMIDD_PLUGINS=module,...`` loads extra
plugin modules by import name; ``PYRAMIDD_TRACE_PLUGINS=1`` logs every hook call.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pluggy

from . import hookspecs
from .entrypoints import entry_points
from .errors import OptionError, PluginError, PyramiddError, UnsupportedInput
from .formats import Resampler, SinkFormat, Source, SourceFormat
from .options import BuildOptions


@dataclass
class Registered:
    """A format and the plugin that added it."""

    kind: str
    name: str
    plugin: str
    obj: Any


@dataclass
class Registry:
    """Formats known to one process. Filled by :func:`hookspecs.pyramidd_register`."""

    entries: dict[tuple[str, str], Registered] = field(default_factory=dict)
    _current_plugin: str = "?"

    def _add(self, kind: str, obj: Any) -> None:
        name = getattr(obj, "name", None)
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin {self._current_plugin!r} added a {kind} without a name")
        key = (kind, name)
        if key in self.entries:
            other = self.entries[key].plugin
            raise PluginError(
                f"{kind} {name!r} is registered by both {other!r} and {self._current_plugin!r};"
                " disable one of them"
            )
        self.entries[key] = Registered(kind, name, self._current_plugin, obj)

    def add_source(self, fmt: SourceFormat) -> None:
        """Add an input format (see :class:`pyramidd.formats.SourceFormat`)."""
        self._add("source", fmt)

    def add_sink(self, fmt: SinkFormat) -> None:
        """Add an output layout (see :class:`pyramidd.formats.SinkFormat`)."""
        self._add("sink", fmt)

    def add_resampler(self, resampler: Resampler) -> None:
        """Add a resampler (see :class:`pyramidd.formats.Resampler`)."""
        self._add("resampler", resampler)

    def add(self, kind: str, obj: Any) -> None:
        """Add an object of another kind (e.g. ``graph-source``) under ``obj.name``."""
        self._add(kind, obj)

    def of_kind(self, kind: str) -> list[Registered]:
        """Entries of one kind in registration order."""
        return [e for e in self.entries.values() if e.kind == kind]

    def get(self, kind: str, name: str) -> Any:
        """The object of ``kind`` called ``name``; :class:`OptionError` listing the choices."""
        try:
            return self.entries[(kind, name)].obj
        except KeyError:
            choices = ", ".join(sorted(e.name for e in self.of_kind(kind))) or "none installed"
            raise OptionError(f"no {kind} called {name!r} (choices: {choices})") from None

    def sink(self, name: str) -> SinkFormat:
        """The sink format called ``name``."""
        return self.get("sink", name)

    def resampler(self, name: str) -> Resampler:
        """The resampler called ``name``."""
        return self.get("resampler", name)

    def probe(self, path: Path, options: BuildOptions) -> Source:
        """Ask source formats, highest priority first, until one recognises ``path``."""
        formats = sorted(
            self.of_kind("source"), key=lambda e: -getattr(e.obj, "priority", 0)
        )
        for entry in formats:
            try:
                source = entry.obj.probe(path, options)
            except PyramiddError:
                raise
            except Exception as exc:  # a plugin's bug fails this file, named, not the process
                raise PluginError(
                    f"{path.name}: source plugin {entry.plugin!r} ({entry.name}) failed while "
                    f"reading it: {type(exc).__name__}: {exc}"
                ) from exc
            if source is not None:
                return source
        names = ", ".join(e.name for e in formats)
        raise UnsupportedInput(
            f"{path.name}: not a format any installed source plugin reads (tried {names})"
        )


def _trace(pm: pluggy.PluginManager) -> None:
    def before(hook_name: str, methods: Iterable[Any], kwargs: dict[str, Any]) -> None:
        names = [m.plugin_name for m in methods]
        print(f"pyramidd: hook {hook_name} -> {names}", file=sys.stderr)

    def after(outcome: Any, hook_name: str, methods: Any, kwargs: Any) -> None:
        print(f"pyramidd: hook {hook_name} done", file=sys.stderr)

    pm.add_hookcall_monitoring(before, after)


def make_manager(disabled: Iterable[str] = ()) -> pluggy.PluginManager:
    """Load every plugin of the ``pyramidd`` entry point group except ``disabled``.

    A hook implementation whose name matches no hook fails here, loudly.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    disabled = set(disabled)
    for ep in entry_points(hookspecs.PROJECT):
        if ep.name in disabled:
            pm.set_blocked(ep.name)
            continue
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken plugin names itself instead of a bare traceback
            raise PluginError(f"plugin {ep.name!r} ({ep.value}) failed to import: {exc}") from exc
        if pm.get_plugin(ep.name) is None:
            pm.register(plugin, name=ep.name)
    # PYRAMIDD_PLUGINS=mod1,mod2 loads plugin modules that are not installed (a plugin
    # under development, a test's plugin); render workers inherit the variable.
    for name in filter(None, os.environ.get("PYRAMIDD_PLUGINS", "").split(",")):
        name = name.strip()
        if name in disabled or pm.get_plugin(name) is not None:
            continue
        try:
            pm.register(importlib.import_module(name), name=name)
        except ImportError as exc:
            raise PluginError(f"PYRAMIDD_PLUGINS names {name!r}, which does not import: {exc}") from exc
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin hook does not exist (misspelled?): {exc}") from exc
    if os.environ.get("PYRAMIDD_TRACE_PLUGINS") == "1":
        _trace(pm)
    return pm


def make_registry(pm: pluggy.PluginManager) -> Registry:
    """Ask every plugin to register its formats, noting which plugin added what."""
    registry = Registry()
    for impl in reversed(pm.hook.pyramidd_register.get_hookimpls()):
        registry._current_plugin = impl.plugin_name
        try:
            impl.function(registry=registry)
        except PluginError:
            raise
        except Exception as exc:
            raise PluginError(f"plugin {impl.plugin_name!r} failed to register: {exc}") from exc
    registry._current_plugin = "?"
    return registry


def publish_staged(
    pm: pluggy.PluginManager, staging: Any, output: Path, layout: str, grid: Any, options: BuildOptions
) -> None:
    """Run :func:`hookspecs.pyramidd_output_staged` for an output built in ``staging``
    (a :class:`pyramidd.sinks.staging.Staging`) and move what plugins added with it."""
    added = pm.hook.pyramidd_output_staged(
        staging=staging.new, output=output, layout=layout, grid=grid, options=options
    )
    staging.add_entries(name for names in added if names for name in names)


class Plugins:
    """A process's plugin manager and the registry its plugins fill.

    The registry is filled on first use: registering imports every format's module,
    which a render worker, needing none of them to start, would pay for at every start.
    """

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm

    @functools.cached_property
    def registry(self) -> Registry:
        """Formats registered by every plugin (see :func:`make_registry`)."""
        return make_registry(self.pm)


_loaded: dict[tuple[str, ...], Plugins] = {}


def load(disabled: Iterable[str] = ()) -> Plugins:
    """The plugins of this process (loaded once per set of disabled names)."""
    key = tuple(sorted(disabled))
    if key not in _loaded:
        _loaded[key] = Plugins(make_manager(key))
    return _loaded[key]
