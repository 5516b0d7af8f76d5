"""The pyramidd service: watched drop folders in, tile pyramids out.

``pyramidd run --config pyramidd.toml`` starts it. Each ``[[watch]]`` table of the
config names a drop folder and a profile; a file dropped there is taken once it has
settled, claimed by an atomic rename into ``processing/``, built on the shared render
pool, and moved to ``done/`` or to ``failed/`` beside a ``NAME.error.json`` that says
what went wrong and what to do. A journal in the state folder makes every claimed job
finish or be redone exactly once after a crash. See ``docs/service.md``.

Modules, one job each: :mod:`.config` (TOML and validation), :mod:`.settle` (when a
file is complete), :mod:`.naming` (safe output names), :mod:`.claim` (moves between
folders), :mod:`.journal` (crash-safe job records), :mod:`.recovery` (what a start
does with the journal), :mod:`.jobs` (one job with retries), :mod:`.watch` (events and
rescans), :mod:`.service` (the whole), :mod:`.notify` (systemd), :mod:`.http`,
:mod:`.metrics`, :mod:`.status`, :mod:`.logs`, :mod:`.crashpoints`, :mod:`.cli`.
"""

from pathlib import Path

#: Default location of the config, as installed by the systemd unit.
DEFAULT_PATH = Path("/etc/pyramidd/pyramidd.toml")
