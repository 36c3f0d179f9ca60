"""A plugin's own editor: an LV2 plugin's X11 UI embedded in a window of ours, or a VST3
plugin's editor window run by a child process.

The window (non-modal, owned by the effects panel) holds a one-line banner and a native
child widget whose X window the UI is created in (`engine.effects.lv2_ui.Lv2Editor`).
Everything runs on the GUI thread: a 30 Hz timer calls the UI's idle, in which it draws,
handles its events and reports the knobs the user turned; `changed(name, value)` passes
those on, and the panel treats them as it treats its own sliders' (the running chain
gets them at its next block). `set_value` shows the sliders' changes in the UI.

X11 UIs need an X display: on another Qt platform (offscreen, Wayland) the banner says
so. A UI that fails to start says why in the banner, in one line.

A VST3 editor is JUCE's own window in a child process (`engine.effects.vst3_editor`):
pedalboard runs it in a modal loop, and a fault there must not end the app.
`Vst3EditorProcess` talks with it in JSON lines through a QProcess (no thread of ours
waits on it) and has the same signals and `set_value`; a failure is one line, `failed`.
"""

from __future__ import annotations

import base64
import json
import sys

from PyQt6 import sip
from PyQt6.QtCore import QObject, QProcess, Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QCloseEvent, QGuiApplication, QWindow
from PyQt6.QtWidgets import QApplication, QLabel, QVBoxLayout, QWidget

from engine.effects import PluginInfo
from engine.effects.instance import PluginLoadError
from engine.effects.lv2_ui import Lv2Editor
from engine.effects.spec import ParameterValue

IDLE_HZ = 30  # how often the UI may draw and read its events
STDERR_LINES = 20  # of a VST3 editor process, kept to say why it ended
X11_PLATFORM = "xcb"


class PluginEditorWindow(QWidget):
    """The editor of one slot's plugin. `open_ui` embeds the plugin's UI (after the window
    is shown); closing the window closes the UI. Signals: `changed(name, value)` for each
    parameter the user changes in the UI; `closed` when the window closes (the UI is gone)."""

    changed = pyqtSignal(str, object)
    closed = pyqtSignal()

    def __init__(self, info: PluginInfo, parent: QWidget | None = None):
        super().__init__(parent, Qt.WindowType.Window)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.info = info
        self.setWindowTitle(f"{info.ref.name} — editor")
        self.banner = QLabel()
        self.banner.setObjectName("muted")
        self.banner.setWordWrap(False)
        self.host = QWidget()  # the UI's X window becomes a child of this one's
        self.host.setAttribute(Qt.WidgetAttribute.WA_NativeWindow)
        self.host.setMinimumSize(320, 120)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.banner)
        layout.addWidget(self.host, 1)
        self.editor: Lv2Editor | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(1000 // IDLE_HZ)
        self._timer.timeout.connect(self._idle)
        app = QApplication.instance()
        if app is not None:  # a UI's cleanup must run while its X connection and library are alive
            app.aboutToQuit.connect(self.close)

    def open_ui(self, values: dict[str, ParameterValue], rate: int) -> bool:
        """Creates the plugin's UI in the window, showing `values` (`rate`: the chain's);
        False (and the reason in the banner) when it cannot."""
        platform = QGuiApplication.platformName()
        if platform != X11_PLATFORM:
            self.banner.setText(
                f"The plugin's editor needs an X11 display; this window runs on Qt's {platform!r} platform"
                " (on Wayland, start with QT_QPA_PLATFORM=xcb)."
            )
            return False
        parent_window = int(self.host.winId())
        QGuiApplication.sync()  # our X window exists on the server before the UI's connection uses it
        try:
            self.editor = Lv2Editor(self.info, parent_window, self.changed.emit, values, rate)
        except PluginLoadError as error:
            self.banner.setText(f"Cannot open the editor: {error}")
            return False
        width, height = self.editor.size or _window_size(self.editor.window)
        if width > 0 and height > 0:
            self.host.setFixedSize(width, height)
        self.banner.setText(f"{self.info.ref.name}: changes here are heard at once and kept with the chain.")
        self._timer.start()
        return True

    def set_value(self, name: str, value: ParameterValue) -> None:
        """Shows a parameter changed elsewhere (a slider) in the UI."""
        if self.editor is not None:
            self.editor.set_value(name, value)

    def bring_to_front(self) -> None:
        self.raise_()
        self.activateWindow()

    def closeEvent(self, event: QCloseEvent | None) -> None:
        self._close_ui()
        self.closed.emit()
        super().closeEvent(event)

    def _idle(self) -> None:
        if self.editor is None:
            return
        if not self.editor.idle():
            self.close()  # the UI asked to be closed (its own close button)
        elif self.editor.size is not None and self.editor.size != (self.host.width(), self.host.height()):
            self.host.setFixedSize(*self.editor.size)  # the UI asked for a new size (ui:resize)

    def _close_ui(self) -> None:
        self._timer.stop()
        if self.editor is not None:
            self.editor.close()
            self.editor = None


def _window_size(window: int) -> tuple[int, int]:
    """The size of a foreign X window (a UI that did not ask for one through ui:resize)."""
    if not window:
        return 0, 0
    foreign = QWindow.fromWinId(sip.voidptr(window))
    if foreign is None:
        return 0, 0
    size = foreign.geometry().size()  # the QWindow is dropped with `foreign`; Qt leaves a foreign X window be
    return size.width(), size.height()


class Vst3EditorProcess(QObject):
    """A VST3 plugin's editor window, run by `python -m engine.effects.vst3_editor` on a copy
    of the slot's plugin (its state and parameters). Signals: `changed(name, value)` for each
    parameter the user changes there; `failed(line)` when it cannot open or its process
    dies; `closed` when the process has ended (after `failed`, if it failed)."""

    changed = pyqtSignal(str, object)
    failed = pyqtSignal(str)
    closed = pyqtSignal()

    def __init__(self, info: PluginInfo, state: bytes | None, values: dict[str, ParameterValue], parent=None):
        super().__init__(parent)
        self.info = info
        self._said: list[str] = []  # the process's last stderr lines
        self._reported = False
        self.process = QProcess(self)
        self.process.readyReadStandardOutput.connect(self._read_messages)
        self.process.readyReadStandardError.connect(self._read_errors)
        self.process.finished.connect(self._finished)
        self.process.errorOccurred.connect(self._not_started)
        app = QApplication.instance()
        if app is not None:  # it edits a copy: nothing is lost when the app ends it at quitting
            app.aboutToQuit.connect(self.process.kill)
        self.process.start(sys.executable, ["-m", "engine.effects.vst3_editor", info.ref.id])
        slot = {"state": None if state is None else base64.b64encode(state).decode("ascii"), "parameters": values}
        self._write(slot)

    def set_value(self, name: str, value: ParameterValue) -> None:
        if self.process.state() is not QProcess.ProcessState.NotRunning:
            self._write({"name": name, "value": value})

    def close(self) -> None:
        """Ends the editor: its process closes the window when its input ends."""
        self.process.closeWriteChannel()

    def bring_to_front(self) -> None:
        """The window is the child's own: the window manager decides; nothing to do here."""

    def _write(self, message: dict) -> None:
        self.process.write((json.dumps(message) + "\n").encode())

    def _read_messages(self) -> None:
        while self.process.canReadLine():
            message = json.loads(bytes(self.process.readLine().data()))
            if "error" in message:
                self._fail(message["error"])
            else:
                self.changed.emit(message["name"], message["value"])

    def _read_errors(self) -> None:
        text = bytes(self.process.readAllStandardError().data()).decode(errors="replace")
        self._said = (self._said + [line for line in text.splitlines() if line.strip()])[-STDERR_LINES:]

    def _finished(self, code: int, status: QProcess.ExitStatus) -> None:
        self._read_messages()
        self._read_errors()
        if status is QProcess.ExitStatus.CrashExit or code != 0:
            x_error = next((line for line in self._said if line.startswith("X Error")), None)
            self._fail(x_error or (self._said[-1] if self._said else f"its process ended (exit {code})"))
        self.closed.emit()

    def _not_started(self, error: QProcess.ProcessError) -> None:
        if error is QProcess.ProcessError.FailedToStart:
            self._fail(f"its process did not start ({self.process.errorString()})")
            self.closed.emit()

    def _fail(self, line: str) -> None:
        if not self._reported:  # the first reason is the one that counts
            self._reported = True
            self.failed.emit(f"{self.info.ref.name}'s editor: {line}")
