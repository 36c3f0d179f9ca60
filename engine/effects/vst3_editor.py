"""A VST3 plugin's own editor, in a child process of the app.

pedalboard's `show_editor` runs JUCE's modal loop on the thread that calls it, and a
JUCE or plugin fault there (an X error) ends the process: so the editor runs here, on a
copy of the slot's plugin, and talks with the app in JSON lines.

    python -m engine.effects.vst3_editor BUNDLE

In (stdin): first {"state": base64 or null, "parameters": {name: value}} (the slot as it
is), then {"name": N, "value": V} for each change made elsewhere (a slider); the end of
the input closes the editor. Out (stdout): {"name": N, "value": V} for each parameter the
user changes in the editor (read every `POLL_SECONDS`), or {"error": "one line"} when it
cannot open. What the plugin prints goes to stderr.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import threading
from typing import TextIO

import pedalboard

from engine.effects import vst3
from engine.effects.instance import PluginLoadError
from engine.effects.pedalboard_host import PedalboardInstance
from engine.effects.spec import ParameterValue
from engine.errors import one_line

POLL_SECONDS = 0.05
RATE = 48000
BLOCK = 512


class _Session:
    """The open editor's plugin, and what the app last knows of each parameter."""

    def __init__(self, plugin: PedalboardInstance, out: TextIO):
        self.plugin = plugin
        self.out = out
        self.lock = threading.Lock()  # the app's changes and the polling take turns
        self.known = plugin.parameter_values()
        self.closing = threading.Event()

    def read_app(self, lines: TextIO) -> None:
        """Applies the app's changes until its input ends, then closes the editor."""
        for line in lines:
            change = json.loads(line)
            with self.lock:
                self.plugin.set_parameter(change["name"], change["value"])
                # the plugin may quantise the value: remember what it reads back, not to echo it
                self.known[change["name"]] = self.plugin.parameter_values()[change["name"]]
        self.closing.set()

    def poll(self) -> None:
        """Reports the parameters the user changes in the editor, until it closes."""
        while not self.closing.wait(POLL_SECONDS):
            self.report_changes()

    def report_changes(self) -> None:
        with self.lock:
            values = self.plugin.parameter_values()
            changed = {name: value for name, value in values.items() if value != self.known[name]}
            self.known = values
        for name, value in changed.items():
            self._send({"name": name, "value": value})

    def _send(self, message: dict[str, ParameterValue]) -> None:
        self.out.write(json.dumps(message) + "\n")
        self.out.flush()


def main() -> int:
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")  # the messages; the plugin's prints go to stderr
    os.dup2(2, 1)
    slot = json.loads(sys.stdin.readline())
    try:
        plugin = vst3.open_vst3(sys.argv[1], RATE, BLOCK)
        if slot["state"] is not None:
            plugin.load_state(base64.b64decode(slot["state"]))
        for name, value in slot["parameters"].items():
            plugin.set_parameter(name, value)
    except PluginLoadError as error:
        out.write(json.dumps({"error": one_line(error)}) + "\n")
        return 1
    assert isinstance(plugin.plugin, pedalboard.VST3Plugin)  # what open_vst3 loads
    session = _Session(plugin, out)
    threading.Thread(target=session.read_app, args=(sys.stdin,), daemon=True).start()
    threading.Thread(target=session.poll, daemon=True).start()
    try:
        plugin.plugin.show_editor(session.closing)
    except RuntimeError as error:  # pedalboard's words: no editor, no display
        out.write(json.dumps({"error": one_line(error)}) + "\n")
        return 1
    finally:
        session.closing.set()
    session.report_changes()  # what the user turned just before closing the window
    return 0


if __name__ == "__main__":
    sys.exit(main())
