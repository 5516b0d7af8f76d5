"""``python -m pyramidd``: the installed command (:mod:`pyramidd.command`)."""

from .command import main

main()
