"""Signals of a running service: SIGTERM/SIGINT stop it, SIGHUP reloads its config."""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable

import anyio
from anyio.abc import TaskStatus


async def handle(stop: Callable[[], None], reload: Callable[[], Awaitable[None]], *,
                 task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
    """Deliver signals until cancelled; report ready once they are caught.

    A second SIGTERM/SIGINT calls ``stop`` again, which cuts the stop deadline short.
    Reloads run one at a time, in the order the signals came.
    """
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        task_status.started()
        async for signum in signals:
            if signum == signal.SIGHUP:
                await reload()
            else:
                stop()
