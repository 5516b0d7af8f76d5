"""A pyramidd plugin for the benchmarks: writes a build's summary as JSON.

Loaded with ``PYRAMIDD_PLUGINS=record_summary`` (``bench/`` on ``PYTHONPATH``); the
summary of each successful build goes to the file named by ``PYRAMIDD_BENCH_SUMMARY``.
It lets ``warp.py`` read the input bytes the build's warp counted, exactly, instead
of the rounded figure ``pyramidd build`` prints.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pyramidd.hookspecs import hookimpl


@hookimpl
def pyramidd_build_finished(summary: dict[str, Any] | None) -> None:
    """Write ``summary`` where ``PYRAMIDD_BENCH_SUMMARY`` says. Runs in the coordinator."""
    target = os.environ.get("PYRAMIDD_BENCH_SUMMARY")
    if target and summary is not None:
        Path(target).write_text(json.dumps(summary, default=str))
