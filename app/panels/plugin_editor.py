"""A plugin's own editor in a window of ours: an LV2 plugin's X11 UI, embedded.

The window (non-modal, owned by the effects panel) holds a one-line banner and a native
child widget whose X window the UI is created in (`engine.effects.lv2_ui.Lv2Editor`).
Everything runs on the GUI thread: a 30 Hz timer calls the UI's idle, in which it draws,
handles its events and reports the knobs the user turned; `changed(name, value)` passes
those on, and the panel treats them as it treats its own sliders' (the running chain
gets them at its next block). `set_value` shows the sliders' changes in the UI.

X11 UIs need an X display: on another Qt platform (offscreen, Wayland) the banner says
so. A UI that fails to start says why in the banner, in one line.
"""

from __future__ import annotations

from PyQt6 import sip
from PyQt6.QtCore import Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QCloseEvent, QGuiApplication, QWindow
from PyQt6.QtWidgets import QApplication, QLabel, QVBoxLayout, QWidget

from engine.effects import PluginInfo
from engine.effects.instance import PluginLoadError
from engine.effects.lv2_ui import Lv2Editor
from engine.effects.spec import ParameterValue

IDLE_HZ = 30  # how often the UI may draw and read its events
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

    def open_ui(self, values: dict[str, ParameterValue]) -> bool:
        """Creates the plugin's UI in the window, showing `values`; False (and the reason in
        the banner) when it cannot."""
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
            self.editor = Lv2Editor(self.info, parent_window, self.changed.emit, values)
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

    def closeEvent(self, event: QCloseEvent | None) -> None:
        self._close_ui()
        self.closed.emit()
        super().closeEvent(event)

    def _idle(self) -> None:
        if self.editor is not None and not self.editor.idle():
            self.close()  # the UI asked to be closed (its own close button)

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
