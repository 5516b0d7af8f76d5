"""The installed ``pyramidd`` command: a build's fork server first, then the rest.

A build reaches its first subtree when both the command and the fork server its
workers are forked from have done their imports (the server's: numpy, OpenCV, the
plugins, the TIFF source). Started here, before the command line's own modules and
argparse are imported and the arguments parsed, the server imports beside all of
that instead of after it; the command checks the guess against its parsed arguments
(:func:`pyramidd.cli.cmd_build`).
"""

from __future__ import annotations

import sys

from . import launch


def main() -> None:
    """Entry point of the ``pyramidd`` script."""
    plugins = launch.build_fork_server_plugins(sys.argv[1:])
    early = None if plugins is None else (plugins, launch.start_fork_server(plugins))
    from .cli import main as run

    sys.exit(run(None, early_fork_server=early))
