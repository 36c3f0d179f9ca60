"""`harmonic-studio`: opens the HarmonicRNN Studio window with the shipped default model."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys

from PyQt6.QtCore import QSocketNotifier, QTimer
from PyQt6.QtWidgets import QApplication, QMessageBox

from app.states import ModelStatus, TransportState


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harmonic-studio",
        description="HarmonicRNN Studio: generate audio live (from silence or seed audio), keep a library of takes.",
    )
    parser.add_argument("--checkpoint", help="a checkpoint folder to load instead of the last used / shipped default")
    parser.add_argument(
        "--library", help="the sample library folder (default: $HARMONIC_LIBRARY or the user data folder)"
    )
    parser.add_argument("--settings", help="an INI file for the settings (default: the user's settings store)")
    parser.add_argument(
        "--seed-audio",
        "--seed",  # its first name, kept for scripts that use it
        dest="seed_audio",
        metavar="AUDIO",
        help="seed audio: an audio file the takes start from (not a random seed; --seed is its older name)",
    )
    parser.add_argument(
        "--effects", metavar="CHAIN", help="an effects chain preset (.json) to play the live stream through"
    )
    parser.add_argument("--generate", action="store_true", help="start generating as soon as the model is loaded")
    parser.add_argument(
        "--screenshot", metavar="PNG", help="generate for a few seconds, save a screenshot of the window, quit"
    )
    parser.add_argument("--screenshot-after", type=float, default=6.0, metavar="SECONDS")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if sys.platform.startswith("linux") and not any(
        os.environ.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
    ):
        print(
            "harmonic-studio: no display to open the window on (set DISPLAY, or run it under xvfb-run)", file=sys.stderr
        )
        return 1
    # Here, not at the top: the window loads jax, flax, orbax and pedalboard (about 1 s), which
    # `--help`, a wrong argument and the missing display above do not wait for.
    from app import errors, style  # noqa: PLC0415
    from app.library import Library, LibraryError  # noqa: PLC0415
    from app.settings import Settings  # noqa: PLC0415
    from app.window import MainWindow  # noqa: PLC0415
    from engine.compile_cache import enable_compile_cache  # noqa: PLC0415

    reporter = errors.install()
    enable_compile_cache()  # a second start loads the generator's programs from disk
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("HarmonicRNN Studio")
    app.setOrganizationName("HarmonicRNN")
    style.apply(app)
    try:
        library = Library(args.library)
    except LibraryError as error:  # e.g. another instance has it open
        print(f"harmonic-studio: {error}", file=sys.stderr)
        if QApplication.platformName() != "offscreen":  # started from a desktop menu, no terminal to read
            QMessageBox.critical(None, "HarmonicRNN Studio", str(error))
        return 1
    window = MainWindow(library=library, settings=Settings(args.settings), checkpoint=args.checkpoint)
    reporter.message.connect(window.show_error)
    wakeup = _close_on_signals(window)  # noqa: F841 - kept alive while the loop runs
    window.show()
    seed_audio_task = window.seed_audio_panel.open_file(args.seed_audio) if args.seed_audio else None
    if args.effects:
        window.effects_panel.load_preset(args.effects)
        window.tabs.setCurrentWidget(window.effects_scroll)
    if args.screenshot:
        _schedule_screenshot(window, args.screenshot, args.screenshot_after, seed_audio_task)
    elif args.generate:
        _when_ready(window, seed_audio_task, window.generate)
    return app.exec()


def _close_on_signals(window) -> tuple:
    """SIGTERM and Ctrl-C close the window as its close button does, so the take being
    generated is saved. Python runs a signal handler only when the main thread runs Python
    code; the wakeup socket makes Qt's loop call into Python as soon as a signal arrives.
    Returns what must stay alive while the loop runs."""
    receive, send = socket.socketpair()
    for end in (receive, send):
        end.setblocking(False)
    signal.set_wakeup_fd(send.fileno())
    # the stubs spell Qt's qintptr as sip.voidptr; at run time PyQt6 takes the descriptor as an int
    notifier = QSocketNotifier(receive.fileno(), QSocketNotifier.Type.Read, window)  # type: ignore[call-overload]
    notifier.activated.connect(lambda: receive.recv(64))
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: QTimer.singleShot(0, window.close))
    return receive, send, notifier


def _seed_audio_pending(window, seed_audio_task) -> bool:
    """Whether the seed audio file given on the command line is still being read."""
    return (
        seed_audio_task is not None
        and (seed_audio_task.running or not window.seed_audio_panel.source)
        and not window.messages
    )


def _when_ready(window, seed_audio_task, action) -> None:
    """Runs `action` once the model (and the seed audio, if any) has loaded."""

    def check():
        if window.model_status is ModelStatus.LOADING or _seed_audio_pending(window, seed_audio_task):
            QTimer.singleShot(200, check)
        else:
            action()

    QTimer.singleShot(100, check)


def _schedule_screenshot(window, path: str, seconds: float, seed_audio_task=None) -> None:
    def start():
        if window.model_status is ModelStatus.LOADING or _seed_audio_pending(window, seed_audio_task):
            QTimer.singleShot(200, start)
            return
        window.generate()
        QTimer.singleShot(200, wait_for_sound)

    def wait_for_sound():
        # the delay counts from when audio flows (compiling can take a while)
        if window.transport.state in (TransportState.PLAYING, TransportState.RENDERING):
            QTimer.singleShot(int(seconds * 1000), shoot)
        elif window.transport.state is TransportState.ERROR:
            shoot()
        else:
            QTimer.singleShot(200, wait_for_sound)

    def shoot():
        window.grab().save(path)
        window.close()
        QApplication.instance().quit()

    QTimer.singleShot(300, start)


if __name__ == "__main__":
    sys.exit(main())
