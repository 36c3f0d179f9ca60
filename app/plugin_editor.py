"""A plugin's own editor window, in a child process.

pedalboard's `show_editor()` runs the plugin's window in a modal event loop of its own,
on the main thread: called in the app it would freeze the window (the views, the
meters, every button) until the editor closes. So a child process (`python -m
app.plugin_editor`) loads a copy of the plugin with the slot's state and parameters and
shows its editor; when that window closes (the user closes it, or `PluginEditor.close()`
asks the child) the child prints the plugin's new state and parameter values as one
JSON line, which `closed` hands to the effects panel (which rebuilds the chain with
them). The live stream keeps playing the old settings while the editor is open.

Protocol: the parent writes the slot (`PluginSlot.to_dict()` JSON) as the first line of
the child's stdin; the child prints `open` once the editor is up; any later line on stdin
(or its end) closes the editor; the child's last stdout line is
{"state": base64 or null, "parameters": {...}}.
"""

from __future__ import annotations

import base64
import json
import sys
import threading

from PyQt6.QtCore import QObject, QProcess, pyqtSignal

from engine.effects import PluginSlot

EDITOR_RATE = 48000
EDITOR_BLOCK = 512


class PluginEditor(QObject):
    """Runs one slot's editor in a child process. Signals: `opened`; `closed(state, parameters)`
    with what the user set; `error(str)` when the editor could not run."""

    opened = pyqtSignal()
    closed = pyqtSignal(object, dict)  # bytes | None, {name: value}
    error = pyqtSignal(str)

    def __init__(self, slot: PluginSlot, parent=None):
        super().__init__(parent)
        self.slot = slot
        self.process = QProcess(self)
        self.process.readyReadStandardOutput.connect(self._read)
        self.process.finished.connect(self._finished)
        self._lines: list[str] = []
        self._partial = ""

    def open(self) -> None:
        self.process.start(sys.executable, ["-m", "app.plugin_editor"])
        self.process.write((json.dumps(self.slot.to_dict()) + "\n").encode())

    def close(self) -> None:
        """Asks the child to close the editor (and report its state)."""
        if self.process.state() != QProcess.ProcessState.NotRunning:
            self.process.write(b"close\n")

    def _read(self) -> None:
        self._partial += bytes(self.process.readAllStandardOutput()).decode(errors="replace")
        *lines, self._partial = self._partial.split("\n")
        for line in lines:
            if line == "open":
                self.opened.emit()
            elif line:
                self._lines.append(line)

    def _finished(self, code: int, status) -> None:
        self._read()
        name = self.slot.ref.name
        if code != 0 or status != QProcess.ExitStatus.NormalExit or not self._lines:
            reason = bytes(self.process.readAllStandardError()).decode(errors="replace").strip().splitlines()
            self.error.emit(f"The editor of {name} failed: {reason[-1] if reason else f'exit status {code}'}")
            return
        result = json.loads(self._lines[-1])
        state = None if result["state"] is None else base64.b64decode(result["state"])
        self.closed.emit(state, result["parameters"])


def main() -> int:
    """The child: shows the editor of the slot given on stdin, prints its state when closed."""
    from engine.effects import describe
    from engine.effects.plugins import open_plugin
    from engine.errors import UserError

    slot = PluginSlot.from_dict(json.loads(sys.stdin.readline()), "slot")
    try:
        instance = open_plugin(describe(slot.ref), EDITOR_RATE, EDITOR_BLOCK)
        if slot.state is not None:
            instance.load_state(slot.state)
        for name, value in slot.parameters.items():
            instance.set_parameter(name, value)
        plugin = getattr(instance, "plugin", None)
        if plugin is None or not hasattr(plugin, "show_editor"):
            raise UserError(f"{slot.ref.name} has no editor window")
    except UserError as error:
        print(error, file=sys.stderr)
        return 1
    close = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.readline(), close.set()), daemon=True).start()
    print("open", flush=True)
    plugin.show_editor(close)
    state = instance.save_state()
    print(json.dumps({"state": None if state is None else base64.b64encode(state).decode("ascii"),
                      "parameters": instance.parameter_values()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
