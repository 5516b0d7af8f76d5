"""The plugin hooks of pyramidd: this module is the hook reference.

A plugin is a module (or object) with functions marked ``@pyramidd.hookimpl`` and
named after the hooks below, made known through the ``pyramidd`` entry point group::

    [project.entry-points.pyramidd]
    myformat = "myformat_plugin"

Hooks are grouped by phase. Each says **where it runs**:

- *coordinator*: the process that runs ``pyramidd build`` or the service; it plans
  builds and moves files, never decodes or encodes pixels.
- *worker*: a render worker process. Each worker builds its own plugin manager at
  start, so worker hooks are plain synchronous functions and must not rely on state
  set up in the coordinator.

Unless a hook says "first non-None answer wins", every implementation is called and
the return values are ignored or collected as stated.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from pathlib import Path

    from .grid import Grid
    from .options import BuildOptions
    from .plugins import Registry

PROJECT = "pyramidd"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# --------------------------------------------------------------------------- set-up


@hookspec
def pyramidd_register(registry: Registry) -> None:
    """Add the formats this plugin provides to ``registry``.

    Runs in the coordinator **and** in a render worker, once per process, the
    first time that process looks a format up: a worker does so only to find a
    resampler that is not built in, so most never call it. Call ``registry.add_source(...)``,
    ``registry.add_sink(...)``, ``registry.add_resampler(...)`` (see
    :class:`pyramidd.plugins.Registry`). Must be cheap and free of side effects:
    no files opened, no threads started. Return value ignored.
    """


@hookspec
def pyramidd_worker_started(worker_id: int) -> None:
    """A render worker process has started and built its plugin manager.

    Runs in the worker, before its first task. Use it for per-process set-up
    (thread limits of a codec library, caches). Return value ignored.
    """


# --------------------------------------------------------------------------- builds


@hookspec(firstresult=True)
def pyramidd_choose_layout(path: Path, options: dict[str, Any]) -> str | None:
    """Name the layout (sink format) to use for ``path`` when none was asked for.

    Runs in the coordinator before a build. Return a registered sink name, or
    ``None`` to let another plugin (and finally the default, ``dzi``) decide.
    First non-None answer wins.
    """


@hookspec
def pyramidd_build_started(input: Path, output: Path, layout: str) -> None:
    """A build is about to start. Runs in the coordinator. Return value ignored."""


@hookspec
def pyramidd_output_staged(
    staging: Path, output: Path, layout: str, grid: Grid | None, options: BuildOptions
) -> list[str] | None:
    """Add files to a pyramid before it appears (a viewer page, a licence, a manifest).

    Runs in the coordinator after every tile was written and before the sink writes
    its descriptor and moves the output into place. Only for sinks that build in a
    staging folder (the built-in layouts do; a single-file sink such as MBTiles may not).

    ``staging`` is the folder that holds the output's entries under their final names,
    as they will appear in ``output``'s folder (DZI: ``NAME_files``; TMS, XYZ and
    graph layouts: the folder ``NAME``). ``output`` is the final path the sink
    reports, ``grid`` the pyramid's tiles (``None`` for a graph pyramid, which has a
    quadtree instead), ``options`` the build's options.

    Write files inside an existing entry (``staging / NAME / "index.html"``), or new
    top-level files named after the output (``staging / "NAME.html"``) and return
    their names: they are moved into place with the pyramid, before its descriptor,
    so a reader never sees them without it. Return ``None`` or ``[]`` when nothing
    new was added at the top level. Every implementation is called; a raised
    exception fails the build.
    """


@hookspec
def pyramidd_build_finished(
    input: Path, output: Path, layout: str, summary: dict[str, Any] | None, error: str | None
) -> None:
    """A build ended: ``summary`` (levels, tiles, bytes, seconds) on success, else
    ``error``, the message reported to the user. Runs in the coordinator, after the
    output was renamed into place or removed. Return value ignored.
    """
