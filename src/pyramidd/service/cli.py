"""The ``run`` and ``status`` commands, added to pyramidd's command line by :func:`add_commands`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import PyramiddError
from . import DEFAULT_PATH

if TYPE_CHECKING:
    from .config import ServiceConfig

# The config module (TOML, the profiles' validation) is imported by the commands that
# read a config: this module is imported to build every pyramidd command line, a
# one-shot build's among them.


def _default_config() -> Path:
    return Path(os.environ.get("PYRAMIDD_CONFIG", DEFAULT_PATH))


def _load_config(args: argparse.Namespace) -> "ServiceConfig | None":
    """The config ``--config`` names (or the default), or ``None`` once it has said why
    it cannot be read."""
    from .config import ConfigError, load_config

    try:
        return load_config(args.config or _default_config())
    except ConfigError as exc:
        print(f"pyramidd: {exc}", file=sys.stderr)
        return None


def add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``run`` and ``status`` to a parser's subcommands (each sets ``func``)."""
    run = subparsers.add_parser(
        "run", help="run the service: watch drop folders and build what is dropped",
        description="Run the pyramidd service in the foreground (systemd: Type=notify).")
    run.add_argument("--config", type=Path, default=None,
                     help=f"config file (default: $PYRAMIDD_CONFIG or {DEFAULT_PATH})")
    run.set_defaults(func=run_command)
    status = subparsers.add_parser(
        "status", help="show what a running service is doing",
        description="Ask the running service (found through the config's state_dir) for its status.")
    status.add_argument("--config", type=Path, default=None,
                        help=f"config file of the service (default: $PYRAMIDD_CONFIG or {DEFAULT_PATH})")
    status.add_argument("--json", action="store_true", help="print the raw JSON status")
    status.set_defaults(func=status_command)


def run_command(args: argparse.Namespace) -> int:
    """``pyramidd run``: exit 0 after a graceful stop, 2 for a bad config."""
    import anyio

    from . import logs
    from .service import Service

    config = _load_config(args)
    if config is None:
        return 2
    logs.configure(config.log.level, config.log.format)
    try:
        anyio.run(Service(config).run)
    except (PyramiddError, BaseExceptionGroup) as exc:  # state folder taken, port busy, ...
        user = _user_error(exc)
        if user is None:
            raise
        print(f"pyramidd: {user}", file=sys.stderr)
        return 2
    return 0


def _user_error(exc: BaseException) -> PyramiddError | None:
    """The first error a user can fix inside ``exc`` (task groups wrap them)."""
    if isinstance(exc, PyramiddError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _user_error(inner)
            if found is not None:
                return found
    return None


def status_command(args: argparse.Namespace) -> int:
    """``pyramidd status``: 0 if the service answered, 1 if it did not, 2 for a bad config."""
    from .status import fetch, render

    config = _load_config(args)
    if config is None:
        return 2
    try:
        status = fetch(config.state_dir)
    except ConnectionError as exc:
        print(f"pyramidd: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(status, indent=2) if args.json else render(status))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m pyramidd.service``: the two service commands on their own."""
    parser = argparse.ArgumentParser(prog="pyramidd")
    sub = parser.add_subparsers(dest="command", required=True)
    add_commands(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))
