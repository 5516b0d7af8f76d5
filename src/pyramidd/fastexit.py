"""Ending a pyramidd process without the interpreter's teardown.

Once a one-shot build has printed its summary, or a worker or the fork server has
closed what it held, all that remains is tearing down numpy, Pillow, anyio and the
plugins module by module: a tenth of a second, measured, that the coordinator of a
one-shot build would wait for (its own, and each worker's before it is reaped).
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn


def exit_now(code: int) -> NoReturn:
    """End the process with ``code`` once standard output, standard error and any
    logging handlers are flushed."""
    sys.stdout.flush()
    sys.stderr.flush()
    logging = sys.modules.get("logging")
    if logging is not None:  # never imported: no handler to flush, nothing to import
        logging.shutdown()
    os._exit(code)
