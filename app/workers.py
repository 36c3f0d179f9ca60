"""Work off the GUI thread.

`run_task(fn, ...)` runs `fn(task)` in the global QThreadPool; `task.progress(i, n)`,
`task.message(text)` and `task.cancelled` are for `fn`. Results and errors come back
as Qt signals, delivered in the GUI thread (queued), so no worker touches a widget. A
failure arrives as one line (`app.errors.describe`: unexpected ones are logged in full).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from PyQt6.QtCore import QObject, QRunnable, QThreadPool, pyqtSignal

from app import errors


class TaskSignals(QObject):
    progress = pyqtSignal(int, int)
    message = pyqtSignal(str)
    done = pyqtSignal(object)
    failed = pyqtSignal(str)
    finished = pyqtSignal()


class Task(QRunnable):
    def __init__(self, fn: Callable[[Task], object], name: str = "task"):
        super().__init__()
        self.setAutoDelete(False)
        self.fn = fn
        self.name = name
        self.signals = TaskSignals()
        self._cancel = threading.Event()
        self.running = True

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def cancel(self) -> None:
        self._cancel.set()

    def progress(self, done: int, total: int) -> None:
        self.signals.progress.emit(int(done), int(total))

    def message(self, text: str) -> None:
        self.signals.message.emit(text)

    def run(self) -> None:
        try:
            result = self.fn(self)
        except Exception as error:  # reported to the user, never raised into Qt
            self.signals.failed.emit(errors.describe(error, self.name))
        else:
            self.signals.done.emit(result)
        finally:
            self.running = False
            self.signals.finished.emit()


_live: set[Task] = set()

Result = TypeVar("Result")


def _pool() -> QThreadPool:
    pool = QThreadPool.globalInstance()
    if pool is None:  # only after QCoreApplication has been torn down
        raise RuntimeError("Qt's global thread pool is gone")
    return pool


def run_task(
    fn: Callable[[Task], Result],
    *,
    done: Callable[[Result], None] | None = None,
    failed: Callable[[str], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
    message: Callable[[str], None] | None = None,
    name: str = "task",
) -> Task:
    task = Task(fn, name)
    if done:
        task.signals.done.connect(done)
    if failed:
        task.signals.failed.connect(failed)
    if progress:
        task.signals.progress.connect(progress)
    if message:
        task.signals.message.connect(message)
    _live.add(task)
    task.signals.finished.connect(lambda: _live.discard(task))
    pool = _pool()
    # a take holds a thread for as long as it plays: keep room for loads and exports
    # even on a 2-core machine (the work is mostly in JAX, libsndfile and soxr, which
    # release the GIL)
    pool.setMaxThreadCount(max(pool.maxThreadCount(), 6))
    pool.start(task)
    return task


def wait_all(timeout_ms: int = 10000) -> bool:
    """Waits for every task (used at exit and by tests)."""
    for task in list(_live):
        task.cancel()
    return _pool().waitForDone(timeout_ms)
