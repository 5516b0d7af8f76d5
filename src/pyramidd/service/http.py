"""The status server: ``/healthz``, ``/status`` and ``/metrics`` over HTTP, loopback by default.

FastAPI answers and hypercorn serves, inside the service's own event loop. The
listening socket is made here, so a config with port 0 gets a free port, and its
address is written to ``STATE_DIR/http.json`` for ``pyramidd status``.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from pathlib import Path
from typing import Any, Callable

import anyio
from anyio.abc import TaskStatus
from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse

from .config import ConfigError
from .metrics import CONTENT_TYPE_LATEST, Metrics
from .status import State, address_file


def make_app(state: State, metrics: Metrics, refresh: Callable[[], None] | None = None) -> FastAPI:
    """The ASGI app. ``refresh`` brings counts and gauges up to date before an answer."""
    app = FastAPI(title="pyramidd", docs_url=None, redoc_url=None, openapi_url=None)

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


async def serve(app: FastAPI, host: str, port: int, state_dir: Path, *,
                task_status: TaskStatus[tuple[str, int]] = anyio.TASK_STATUS_IGNORED) -> None:
    """Serve ``app`` until cancelled; report ``(host, port)`` once listening."""
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
    try:
        await hypercorn_serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]
    finally:
        try:
            address_file(state_dir).unlink()
        except FileNotFoundError:
            pass
