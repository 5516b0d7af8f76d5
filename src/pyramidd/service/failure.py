"""Why a job failed and what the operator can do about it: the body of ``NAME.error.json``."""

from __future__ import annotations

import errno
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import PyramiddError, WorkerCrashed

#: The advice for each kind of failure. ``{folder}`` is the drop folder, ``{failed}``
#: the failed folder: moving a file back into the drop folder is how a job is retried.
_ADVICE = {
    "bad-input": "The file could not be read as an image or graph. Check that it opens in "
    "another program; drop a repaired copy into {folder}.",
    "unsupported-input": "No installed plugin reads this kind of file. Convert it to a "
    "supported format (PNG, JPEG, TIFF, .npy, ...) or install a plugin that reads it, then "
    "move it from {failed} back into {folder}.",
    "too-large": "The image has more pixels than this watch allows (max_pixels). If it is "
    "genuine, raise max_pixels in the config, reload (SIGHUP), and move it from {failed} "
    "back into {folder}.",
    "bad-output": "The pyramid could not be written (full disk or permissions of the output "
    "folder). Free space or fix permissions, then move the file from {failed} back into "
    "{folder}.",
    "no-space": "The output disk is full. Free space, then move the file from {failed} back "
    "into {folder}.",
    "worker-crashed": "A render worker died on every attempt (killed, or out of memory: see "
    "the kernel log). Check memory limits, then move the file from {failed} back into "
    "{folder}.",
    "service-stopped": "The service stopped while building this file on every attempt; "
    "the file may make it crash. Check the service log around those stops before moving "
    "it back into {folder}.",
    "symlink": "Symbolic links are not followed, so a drop folder cannot be used to read "
    "files from elsewhere. Copy the file itself into {folder}.",
    "bad-option": "The watch's profile is not valid for this input. Fix the [[watch]] table "
    "in the config, reload (SIGHUP), and move the file back into {folder}.",
    "bad-gcps": "Its ground control points (a NAME.points file beside it, or those in the "
    "file) cannot define a warp: see the error. Fix them, then move the file and its points "
    "from {failed} back into {folder}.",
    "bad-graph-data": "The graph has a record this watch does not accept (bad_data = "
    "\"error\"): fix the record named in the error, or set bad_data = \"skip\" in the "
    "[[watch]] table and reload (SIGHUP), then move the file from {failed} back into {folder}.",
    "plugin": "A plugin failed while handling this file (the error names it). Fix or update "
    "the plugin, or disable it (disabled_plugins in the config), then move the file from "
    "{failed} back into {folder}.",
    "internal": "This is a bug in pyramidd or a plugin; the service log has the traceback. "
    "Report it with the log; the file is kept in {failed}.",
}
#: For a kind of failure a plugin defines, or one without advice of its own: not a bug.
_OTHER = ("See the error for what went wrong. Fix its cause, then move the file from "
          "{failed} back into {folder}.")


@dataclass(frozen=True)
class Failure:
    """A failed job's reason, as written to ``NAME.error.json`` and shown in ``/status``."""

    kind: str
    error: str
    retry: bool = False  # whether another attempt could succeed (only worker crashes)

    def report(self, **context: Any) -> dict[str, Any]:
        """The error file's content: the failure, advice, and ``context`` (job, input, ...)."""
        folder = context.get("folder", "the drop folder")
        failed = context.get("failed", "the failed folder")
        advice = _ADVICE.get(self.kind, _OTHER)
        body = {"error": self.error, "kind": self.kind,
                "what_to_do": advice.format(folder=folder, failed=failed)}
        body.update({k: v for k, v in context.items() if v is not None})
        return body

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the journal."""
        return asdict(self)


def from_exception(exc: BaseException) -> Failure:
    """Classify an exception a build raised."""
    if isinstance(exc, WorkerCrashed):
        return Failure(exc.kind, str(exc) or "a render worker died", retry=True)
    if isinstance(exc, PyramiddError):
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, OSError) and cause.errno == errno.ENOSPC:
            return Failure("no-space", str(exc))
        return Failure(exc.kind, str(exc))
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return Failure("no-space", f"no space left on the output disk: {exc}")
    if isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return Failure("bad-output", f"cannot write the output: {exc}")
    return Failure("internal", f"{type(exc).__name__}: {exc}")
