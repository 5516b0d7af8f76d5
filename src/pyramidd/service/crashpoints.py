"""Named places where the service can be made to die as if killed with ``kill -9``.

The crash-safety tests set ``PYRAMIDD_CRASH_AT`` to a comma-separated list of
``POINT`` or ``POINT@GLOB`` (only for inputs whose name matches ``GLOB``); when the
service reaches a listed point it sends itself SIGKILL, so no ``finally`` block,
``atexit`` hook or buffered write runs, exactly as after a real kill or power cut.

Points of a job, in order:

- ``after-claim-intent``: the journal says "claiming", the input is still in the drop folder
- ``after-claim``: the input is in ``processing/``
- ``after-attempt``: an attempt is recorded, the build not started
- ``mid-build``: the build has written part of its tiles
- ``after-build``: the output is in place, the journal does not know yet
- ``after-built``: the journal says "built", the input is still in ``processing/``
- ``after-move``: the input is in ``done/`` (or ``failed/``), the journal does not know yet

``worker-crash`` is different: the render worker that would run the job's first task
kills itself instead, which exercises the pool's replacement of dead workers and the
job's retries with a real process death; the service lives on.
"""

from __future__ import annotations

import fnmatch
import os
import signal

ENV = "PYRAMIDD_CRASH_AT"

POINTS = (
    "after-claim-intent", "after-claim", "after-attempt", "mid-build", "after-build",
    "after-built", "after-move", "worker-crash",
)


def armed(point: str, subject: str | None = None) -> bool:
    """Whether ``PYRAMIDD_CRASH_AT`` asks to crash at ``point`` for input ``subject``."""
    spec = os.environ.get(ENV, "")
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, _, glob = item.partition("@")
        if name == point and (not glob or (subject is not None and fnmatch.fnmatchcase(subject, glob))):
            return True
    return False


def hit(point: str, subject: str | None = None) -> None:
    """Die here, at once and uncleanly, if the environment asks for it."""
    if armed(point, subject):
        os.kill(os.getpid(), signal.SIGKILL)


def die_in_worker() -> None:
    """Run in a render worker by the ``worker-crash`` point: the worker dies mid-task."""
    os.kill(os.getpid(), signal.SIGKILL)
