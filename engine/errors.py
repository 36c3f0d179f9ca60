"""The error policy of the command line (and of anything that reports to a user).

Two kinds of failure:

- `UserError`: a problem the user can act on (a bad path, a bad flag, a full disk). Its
  message is one line: what went wrong and what to do. `harmonic` prints it and exits 2.
- anything else is a bug or an unforeseen fault: its traceback is appended to a log file
  in the user's state folder (`log_dir()`), and the user sees one line naming that file.

    from engine.errors import UserError, log_unexpected
    raise UserError(f"{path}: not found; check the path")
"""

from __future__ import annotations

import datetime
import errno
import os
import traceback
from pathlib import Path

import platformdirs

LOG_NAME = "errors.log"


class UserError(Exception):
    """A problem the user can fix; printed as one line without a traceback."""


def log_dir() -> Path:
    """Where unexpected errors are logged: $HARMONIC_LOG_DIR, else the user state folder."""
    return Path(os.environ.get("HARMONIC_LOG_DIR") or platformdirs.user_state_dir("harmonic"))


def log_unexpected(error: BaseException, context: str) -> str:
    """Appends `error`'s traceback to the log file; returns the one line to show the user.

    Args:
      error: the exception being handled.
      context: what was running, e.g. "harmonic generate".
    """
    text = "".join(traceback.format_exception(error))
    stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    path = log_dir() / LOG_NAME
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as log:
            log.write(f"--- {stamp} {context}\n{text}\n")
    except OSError as log_error:  # the log itself cannot be written: say so, still in one line
        return (
            f"{context}: unexpected error {type(error).__name__}: {one_line(error)} "
            f"(and the log {path} failed: {log_error})"
        )
    return f"{context}: unexpected error {type(error).__name__}: {one_line(error)}; details in {path}"


def one_line(error: BaseException, limit: int = 400) -> str:
    """An exception's message on one line, at most `limit` characters (some libraries
    write screens of text into their messages)."""
    text = "; ".join(line.strip() for line in str(error).splitlines() if line.strip()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def causes(error: BaseException | None):
    """`error` and the errors it was raised from or during, innermost last."""
    while error is not None:
        yield error
        error = error.__cause__ or error.__context__


def is_disk_full(error: BaseException | None) -> bool:
    """True when `error`, or an error it was raised from, is a full disk or quota: an
    OSError with ENOSPC/EDQUOT, or a library's wrapper that keeps only the message
    (tensorstore raises ValueError("... No space left on device ..."))."""
    for cause in causes(error):
        if isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(cause).lower()
        if "no space" in text or "disk full" in text or "disk quota exceeded" in text:
            return True
    return False


def is_interrupt(error: BaseException) -> bool:
    """True when `error` wraps a Ctrl-C: an extension module interrupted while it loads
    raises ImportError("initialization failed") from the KeyboardInterrupt."""
    return any(isinstance(cause, KeyboardInterrupt) for cause in causes(error))
