"""The app's error policy. A failure the user can act on is shown as its own one-line
message. Anything unexpected (a bug, an exception in a Qt slot or a thread) is appended
with its traceback to a log file in the user's state folder, and the window shows one
line naming that file: nothing is printed to the terminal and nothing is lost.

The log is the command line's (`engine.errors.log_dir()`): one file for every program.
"""

from __future__ import annotations

import sys
import threading
from types import TracebackType

from PyQt6.QtCore import QObject, pyqtSignal

from app.library import LibraryError
from engine.audio import AudioUnavailable
from engine.checkpoint import CheckpointError
from engine.errors import UserError, log_unexpected

# failures whose message already tells the user what went wrong and what to do
EXPECTED: tuple[type[Exception], ...] = (LibraryError, CheckpointError, AudioUnavailable, UserError)


def describe(error: BaseException, where: str) -> str:
    """The line to show for a failure: its message when expected, else `record`'s line."""
    if isinstance(error, EXPECTED):
        return str(error) or type(error).__name__
    return log_unexpected(error, f"HarmonicRNN Studio ({where})")


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
