"""The service's HTTP server, loopback by default.

- ``/healthz``, ``/status``, ``/metrics``: how the service is doing.
- ``/outputs/``: the watches' output folders with their viewer pages
  (:func:`pyramidd.viewer.http.outputs_app`).
- ``/graph/``: the graph query API over graph pyramids in the output folders
  (:func:`pyramidd.graph.api.make_router`); ``/graph/WATCH/`` when there are several
  watches. ``/docs`` and ``/openapi.json`` describe it.

FastAPI answers and hypercorn serves, inside the service's own event loop. The app
is rebuilt when a reload changes the watches (:class:`Swappable`). The listening
socket is made here, so a config with port 0 gets a free port, and its address is
written to ``STATE_DIR/http.json`` for ``pyramidd status``.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskStatus
from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse

from .. import __version__
from .config import ConfigError, WatchConfig
from .metrics import CONTENT_TYPE_LATEST, Metrics
from .status import State, address_file


def graph_prefix(watch: WatchConfig, watches: Sequence[WatchConfig]) -> str:
    """Where the graph query API of ``watch``'s output folder is served."""
    return "/graph" if len(watches) == 1 else f"/graph/{watch.name}"


def make_app(state: State, metrics: Metrics, refresh: Callable[[], None] | None = None,
             watches: Sequence[WatchConfig] = ()) -> FastAPI:
    """The ASGI app. ``refresh`` brings counts and gauges up to date before an answer."""
    app = FastAPI(title="pyramidd", version=__version__, redoc_url=None)
    _mount_outputs(app, watches)

    @app.get("/healthz")
    def healthz() -> Response:
        """200 while the service takes files, 503 while it starts or stops."""
        ok = state.ready and not state.stopping
        body = {"status": "ok" if ok else "stopping" if state.stopping else "starting"}
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/status")
    def status() -> dict[str, Any]:
        """Queue, running jobs with progress, totals and recent failures."""
        if refresh is not None:
            refresh()
        return state.snapshot()

    @app.get("/metrics")
    def metrics_text() -> Response:
        """Prometheus text exposition."""
        if refresh is not None:
            refresh()
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return app


def _mount_outputs(app: FastAPI, watches: Sequence[WatchConfig]) -> None:
    from ..graph.api import make_router
    from ..viewer.http import outputs_app

    prefixes = {w.name: graph_prefix(w, watches) for w in watches}
    for w in watches:
        app.include_router(make_router(w.output), prefix=prefixes[w.name])
    if watches:
        app.mount("/outputs", outputs_app({w.name: w.output for w in watches},
                                          graph_api=prefixes))


class Swappable:
    """An ASGI app whose implementation can be replaced while the server runs."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Hand the request to the current app."""
        await self.app(scope, receive, send)


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def write_address(state_dir: Path, host: str, port: int) -> None:
    """Record where the server listens (atomically, for ``pyramidd status``)."""
    path = address_file(state_dir)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"host": host, "port": port, "pid": os.getpid()}))
    os.replace(tmp, path)


async def serve(app: Any, host: str, port: int, state_dir: Path, *,
                task_status: TaskStatus[tuple[str, int]] = anyio.TASK_STATUS_IGNORED) -> None:
    """Serve ``app`` until cancelled; report ``(host, port)`` once listening.

    Cancelling ends the server through its own graceful shutdown (open connections get
    ``graceful_timeout`` to finish), not by cancelling it: cancelled while a connection
    was still open (for seconds after any request, by keep-alive), hypercorn failed
    its shutdown with an error, and the service exited 1 with tracebacks on stop.
    """
    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config

    try:
        sock = listen(host, port)
    except OSError as exc:
        raise ConfigError(f"http.bind: cannot listen on {host}:{port}: {exc.strerror or exc};"
                          " choose another address or port (0 picks a free one)") from None
    bound_host, bound_port = sock.getsockname()[:2]
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]  # hypercorn owns and closes it from here
    config.accesslog = None
    config.errorlog = logging.getLogger("pyramidd.http")
    config.graceful_timeout = 1.0
    stop = anyio.Event()
    await anyio.to_thread.run_sync(write_address, state_dir, bound_host, bound_port)
    task_status.started((bound_host, bound_port))
    done = anyio.Event()
    shield = anyio.CancelScope(shield=True)

    async def run_server() -> None:
        with shield:
            try:
                await hypercorn_serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]
            finally:
                done.set()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(run_server)
            try:
                await done.wait()  # the server ended on its own (it failed)
            finally:
                stop.set()
                with anyio.CancelScope(shield=True), anyio.move_on_after(config.graceful_timeout + 2):
                    await done.wait()
                shield.cancel()  # past the grace period: cancelled after all
    finally:
        try:
            address_file(state_dir).unlink()
        except FileNotFoundError:
            pass
