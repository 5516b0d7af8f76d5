"""``python -m pyramidd.service run|status``: the service commands without the full CLI."""

import sys

from .cli import main

sys.exit(main())
