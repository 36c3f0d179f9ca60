"""Faults in the desktop app, the real app run as a subprocess (offscreen, no sound card,
so takes render at real time into the library):

- SIGKILL at random instants during takes, restarting after each: the library passes
  `Library.check()` (every row's FLAC decodes at its recorded length, no orphan files, no
  partial rows) and no take or recorded audio that had reached the disk is lost;
- a normal close (SIGTERM, which closes the window as its close button does) during a
  take keeps the take and prints no traceback;
- a second instance on the same library is refused with one line and writes nothing;
- an unexpected exception in a Qt slot, a thread or a task goes to the log file with its
  traceback, and the window gets one line naming that file (in process: no real input
  makes the app fail unexpectedly, and none should).

The compiled generator is shared with tests/test_app.py through HARMONIC_COMPILE_CACHE.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
from PyQt6.QtCore import QTimer  # noqa: E402

from app import errors, workers  # noqa: E402
from app.library import Library, LibraryError  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RATE = 16000

pytestmark = pytest.mark.timeout(300)


class App:
    """`harmonic-studio --generate` on a library, stderr kept in a file."""

    def __init__(self, tmp_path: Path, checkpoint: Path, library: Path, seconds: float | None, name: str):
        cache = tmp_path.parent / "app-jaxcache"  # the session's base folder, as in tests/test_app.py
        settings = tmp_path / f"{name}.ini"
        endless = "true" if seconds is None else "false"
        settings.write_text(f"[controls]\nendless={endless}\nseconds={seconds or 10}\n")
        env = dict(
            os.environ,
            QT_QPA_PLATFORM="offscreen",
            JAX_PLATFORMS="cpu",
            PULSE_SERVER="unix:/nonexistent",
            HARMONIC_COMPILE_CACHE=str(cache),
            HARMONIC_LOG_DIR=str(tmp_path / "logs"),
        )
        self.stderr_path = tmp_path / f"{name}.stderr"
        with open(self.stderr_path, "w") as stderr:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "app.main",
                    "--checkpoint",
                    str(checkpoint),
                    "--library",
                    str(library),
                    "--settings",
                    str(settings),
                    "--generate",
                ],
                env=env,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def wait_for_new_take(self, partial: Path, seen: set[str], seconds: float = 0.0) -> Path:
        """The raw file of a take this run started, once it holds `seconds` of audio."""
        deadline = time.time() + 240
        while time.time() < deadline:
            for path in partial.glob("*.f32") if partial.exists() else []:
                try:
                    if path.stem not in seen and path.stat().st_size >= 4 * RATE * seconds:
                        return path
                except FileNotFoundError:  # finished meanwhile
                    pass
            assert self.process.poll() is None, f"the app exited: {self.stderr[-3000:]}"
            time.sleep(0.05)
        self.process.kill()
        pytest.fail(f"the app did not start a take: {self.stderr[-3000:]}")

    def stop(self, number: int) -> int:
        self.process.send_signal(number)
        return self.process.wait(120)


def saved_takes(library: Path) -> dict[str, int]:
    """Finished takes and their frames, read from the database as a killed app left it."""
    with sqlite3.connect(library / "library.sqlite") as db:
        return dict(db.execute("SELECT id, frames FROM takes WHERE state = 'done' AND deleted = 0"))


def test_sigkill_at_random_instants_during_takes_loses_nothing(tmp_path, tiny_checkpoint):
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    library = tmp_path / "library"
    partial = library / "takes" / ".partial"
    saved: dict[str, int] = {}
    on_disk: dict[str, int] = {}  # frames of each killed take that had reached its raw file
    for round in range(5):
        app = App(tmp_path, tiny_checkpoint, library, seconds=1.5, name=f"run{round}")
        raw = app.wait_for_new_take(partial, set(on_disk))
        time.sleep(rng.uniform(0.0, 2.0))  # while recording (1.5 s at real time), finishing, or after
        try:
            on_disk[raw.stem] = raw.stat().st_size // 4
        except FileNotFoundError:  # finished: the row says how long it is
            on_disk[raw.stem] = 0
        assert app.stop(signal.SIGKILL) == -signal.SIGKILL
        assert "Traceback" not in app.stderr, f"seed {seed}: {app.stderr[-3000:]}"
        now = saved_takes(library)
        assert saved.items() <= now.items(), f"seed {seed}: a saved take changed or vanished"
        saved = now
    with Library(library) as reopened:  # recovers the last round's take, as the app does at start
        assert reopened.check() == [], f"seed {seed}"
        takes = {take.id: take.frames for take in reopened.takes()}
        assert saved.items() <= takes.items(), f"seed {seed}"
        for take_id, frames in on_disk.items():
            assert takes.get(take_id, 0) >= frames, f"seed {seed}: take {take_id} lost audio that was on disk"


def test_second_instance_is_refused_and_sigterm_keeps_the_take(tmp_path, tiny_checkpoint):
    library = tmp_path / "library"
    partial = library / "takes" / ".partial"
    first = App(tmp_path, tiny_checkpoint, library, seconds=None, name="first")
    raw = first.wait_for_new_take(partial, set(), seconds=1.0)

    second = App(tmp_path, tiny_checkpoint, library, seconds=1.0, name="second")
    assert second.process.wait(120) == 1
    (line,) = second.stderr.strip().splitlines()
    assert "is open in another HarmonicRNN Studio" in line and f"process {first.process.pid}" in line
    assert (library / "library.lock").read_text() == str(first.process.pid)
    assert [p.name for p in partial.iterdir()] == [raw.name] and saved_takes(library) == {}

    recorded = raw.stat().st_size // 4
    assert first.stop(signal.SIGTERM) == 0
    assert "Traceback" not in first.stderr, first.stderr[-3000:]
    with Library(library) as reopened:
        assert reopened.check() == [] and reopened.recovered == []
        (take,) = reopened.takes()
        assert take.id == raw.stem and take.frames >= recorded and not take.recovered


@pytest.mark.qt_no_exception_capture  # the app's hook, not pytest-qt's, must see the slot's exception
def test_unexpected_exceptions_go_to_the_log_with_one_line_shown(qtbot, tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("HARMONIC_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # restored after the test: install() replaces them
    monkeypatch.setattr(threading, "excepthook", threading.excepthook)
    reporter = errors.install()
    lines: list[str] = []
    reporter.message.connect(lines.append)

    def slot_bug():
        raise ZeroDivisionError("a bug in a slot")

    def slot_known_failure():
        raise LibraryError("The disk is full: could not save this take. Free some space and try again.")

    def thread_bug():
        raise KeyError("a bug in a thread")

    def task_bug(task):
        raise IndexError("a bug in a task")

    failed: list[str] = []
    sys.excepthook(KeyboardInterrupt, KeyboardInterrupt(), None)  # Ctrl-C before the window: quiet, not logged
    QTimer.singleShot(0, slot_bug)
    QTimer.singleShot(0, slot_known_failure)
    threading.Thread(target=thread_bug, name="worker").start()
    workers.run_task(task_bug, failed=failed.append, name="export")
    qtbot.waitUntil(lambda: len(lines) == 3 and len(failed) == 1, timeout=10000)
    log = tmp_path / "logs" / "errors.log"
    assert sorted(lines + failed) == sorted(
        [
            "The disk is full: could not save this take. Free some space and try again.",  # its own message, not logged
            f"HarmonicRNN Studio (the app): unexpected error ZeroDivisionError: a bug in a slot; details in {log}",
            f"HarmonicRNN Studio (thread worker): unexpected error KeyError: 'a bug in a thread'; details in {log}",
            f"HarmonicRNN Studio (export): unexpected error IndexError: a bug in a task; details in {log}",
        ]
    )
    text = log.read_text()
    assert text.count("Traceback (most recent call last)") == 3
    assert all(name in text for name in ("in slot_bug", "in thread_bug", "in task_bug"))
    assert "Traceback" not in capfd.readouterr().err
