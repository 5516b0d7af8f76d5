"""The built-in formats, registered through the ``pyramidd`` entry point like any plugin."""

from __future__ import annotations

from .hookspecs import hookimpl


@hookimpl
def pyramidd_register(registry) -> None:  # type: ignore[no-untyped-def]
    """Add the built-in sources, resamplers and sinks."""
    from . import resamplers, sinks, sources

    for fmt in sources.BUILTINS:
        registry.add_source(fmt)
    for resampler in resamplers.BUILTINS:
        registry.add_resampler(resampler)
    for sink in sinks.BUILTINS:
        registry.add_sink(sink)
    registry.add_source(__import__("pyramidd.warp.format", fromlist=["FORMAT"]).FORMAT)  # GCP warp
    __import__("pyramidd.graph.plugin", fromlist=["register"]).register(registry)  # graph formats
