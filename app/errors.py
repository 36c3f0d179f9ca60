"""The app's error policy. A failure the user can act on is shown as its own one-line
message. Anything unexpected (a bug, an exception in a Qt slot or a thread) is appended
with its traceback to a log file in the user's state folder, and the window shows one
line naming that file: nothing is printed to the terminal and nothing is lost.

The log is `platformdirs.user_state_dir("harmonic")/studio.log`, or `$HARMONIC_LOG_DIR/studio.log`.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import threading
import traceback
from pathlib import Path
from types import TracebackType

from PyQt6.QtCore import QObject, pyqtSignal

from engine.audio import AudioUnavailable
from engine.checkpoint import CheckpointError
from engine.cli import UserError
from engine.library import LibraryError

LOG_ENV = "HARMONIC_LOG_DIR"
# failures whose message already tells the user what went wrong and what to do
EXPECTED: tuple[type[Exception], ...] = (LibraryError, CheckpointError, AudioUnavailable, UserError)


def log_file() -> Path:
    folder = os.environ.get(LOG_ENV)
    if not folder:
        import platformdirs

        folder = platformdirs.user_state_dir("harmonic", appauthor=False)
    return Path(folder).expanduser() / "studio.log"


def record(error: BaseException, where: str) -> str:
    """Appends `error` and its traceback to the log; returns the one line to show."""
    path = log_file()
    summary = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    details = "".join(traceback.format_exception(error))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as log:
            log.write(f"--- {dt.datetime.now().isoformat(timespec='seconds')} pid {os.getpid()}, {where}\n{details}\n")
    except OSError as failure:
        sys.stderr.write(details)  # no log to keep the details in: the terminal is all that is left
        return f"Unexpected error in {where}: {summary} (the log {path} could not be written: {failure})"
    return f"Unexpected error in {where}: {summary}. Details are in {path}"


def describe(error: BaseException, where: str) -> str:
    """The line to show for a failure: its message when expected, else `record`'s line."""
    return (str(error) or type(error).__name__) if isinstance(error, EXPECTED) else record(error, where)


class Reporter(QObject):
    """Carries the lines of unexpected errors from any thread to the GUI thread (queued)."""

    message = pyqtSignal(str)

    def report(self, line: str) -> None:
        if self.receivers(self.message):
            self.message.emit(line)
        else:  # before the window exists (or after it is gone) the terminal is the only place
            print(f"harmonic-studio: {line}", file=sys.stderr)


def install() -> Reporter:
    """Routes uncaught exceptions (sys.excepthook: the main thread and Qt slots, which PyQt
    hands to it; threading.excepthook: Python threads) through `describe`; connect the
    returned Reporter's `message` to the window."""
    reporter = Reporter()

    def main_hook(kind: type[BaseException], error: BaseException, tb: TracebackType | None) -> None:
        if isinstance(error, KeyboardInterrupt):  # Ctrl-C while starting up: nothing to keep, nothing to say
            return
        reporter.report(describe(error.with_traceback(tb), "the app"))

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is not None:
            name = args.thread.name if args.thread is not None else "a thread"
            reporter.report(describe(args.exc_value.with_traceback(args.exc_traceback), f"thread {name}"))

    sys.excepthook = main_hook
    threading.excepthook = thread_hook
    return reporter
