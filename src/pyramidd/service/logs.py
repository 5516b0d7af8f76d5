"""Logging set-up: structlog, JSON lines when stderr is not a terminal (journald, files).

:func:`configure` is what a command calls once at start; :func:`forward` is the
``on_log`` handler of the render pool, which re-emits the events workers send so
that they reach the service's log (a worker's own stderr goes nowhere useful under
systemd's control).
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}


def configure(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Set up structlog (and the standard ``logging`` of libraries) for this process.

    ``fmt``: ``json``, ``console``, or ``auto`` (console on a terminal, else JSON).
    """
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    renderer: Any = (
        structlog.processors.JSONRenderer(ensure_ascii=True)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            timestamper,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
    # Libraries (hypercorn, asyncio) log through the standard module: render them the
    # same way, so a JSON log stays JSON lines.
    handler = logging.StreamHandler(stream)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        processor=renderer,
        foreign_pre_chain=[structlog.stdlib.add_log_level, structlog.stdlib.add_logger_name,
                           timestamper]))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(_LEVELS.get(level, logging.INFO), logging.WARNING))


def configure_worker(level: str = "info") -> None:
    """Send this render worker's log events, structlog's and the standard library's,
    to the service instead of stderr.

    Call once in each worker at start. Events travel as plain dicts over the worker's
    pipe (``pyramidd.worker.send_log``) and come out of :func:`forward` in the service.
    """
    from .. import worker

    def send(logger: Any, method: str, event_dict: dict[str, Any]) -> str:
        payload = {k: v if isinstance(v, (str, int, float, bool, type(None))) else repr(v)
                   for k, v in event_dict.items()}
        payload.setdefault("level", method)
        worker.send_log(payload)
        raise structlog.DropEvent

    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars,
                    structlog.processors.format_exc_info, send],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.INFO)),
        cache_logger_on_first_use=False,
    )
    # Libraries a worker runs (tifffile on a damaged file, a plugin's codec) log through
    # the standard module, whose last-resort handler would write bare lines to the
    # worker's stderr, between the service's JSON lines: send them the same way.
    root = logging.getLogger()
    root.handlers[:] = [_SendToService()]
    root.setLevel(max(_LEVELS.get(level, logging.INFO), logging.WARNING))


class _SendToService(logging.Handler):
    """A render worker's standard-library log records, sent on as events."""

    def emit(self, record: logging.LogRecord) -> None:
        from .. import worker

        try:
            event: dict[str, Any] = {"event": record.getMessage(),
                                     "level": record.levelname.lower(), "logger": record.name}
            if record.exc_info:
                event["exception"] = logging.Formatter().formatException(record.exc_info)
            worker.send_log(event)
        except Exception:
            self.handleError(record)


def forward(event: dict[str, Any]) -> None:
    """Re-emit a log event a render worker sent, keeping its fields (``worker``, ``pid``...)."""
    event = dict(event)
    level = str(event.pop("level", "info")).lower()
    message = str(event.pop("event", "worker event"))
    event.pop("timestamp", None)
    log = structlog.get_logger("pyramidd.worker")
    getattr(log, level if level in _LEVELS else "info")(message, source="worker", **event)
