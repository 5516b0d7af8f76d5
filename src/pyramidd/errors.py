"""Errors a user can cause, each with a message that says what to do.

Anything deriving from :class:`PyramiddError` is reported as one line without a
traceback; anything else is a bug and shows one.
"""

from __future__ import annotations


class PyramiddError(Exception):
    """Base of every error caused by input, options or the environment."""

    #: Short machine-readable kind, used in ``failed/NAME.error.json`` and metrics.
    kind = "error"


class OptionError(PyramiddError):
    """An option or config value is invalid."""

    kind = "bad-option"


class InputError(PyramiddError):
    """The input cannot be read: missing, empty, truncated, corrupt or unsupported."""

    kind = "bad-input"


class UnsupportedInput(InputError):
    """No installed source plugin recognises the input."""

    kind = "unsupported-input"


class ImageTooLarge(InputError):
    """The input has more pixels than the configured limit (decompression bomb guard)."""

    kind = "too-large"


class OutputError(PyramiddError):
    """The output cannot be written: unwritable folder, full disk, name clash."""

    kind = "bad-output"


class NoSpace(OutputError):
    """The output's disk (or quota) is full."""

    kind = "no-space"


class WorkerCrashed(PyramiddError):
    """A render worker process died while running a task (killed, out of memory, crashed)."""

    kind = "worker-crashed"


class PluginError(PyramiddError):
    """A plugin is broken: bad hook name, failed import, or it raised while loading."""

    kind = "plugin"
