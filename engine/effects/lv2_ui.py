"""An LV2 plugin's own editor (its X11 UI), embedded in an X window the caller owns.

The UI runs on the caller's thread (the GUI thread): `instantiate` creates its X window as
a child of `parent_window`, `idle()` lets it draw and handle events (call it ~30 times a
second), and what the user turns there arrives, as (parameter name, value), through
`on_change`. The UI talks to nobody else: it never touches the running plugin, so the
caller routes those changes to the chain as it does its own controls' (applied at the
next block), and shows it the values the other controls set with `set_value`.

    editor = Lv2Editor(info, window_id, on_change=lambda name, value: ..., values=current, rate=16000)
    timer: editor.idle() -> False once the UI asked to be closed
    editor.set_value("decay", 3.0)      # the UI's knob follows
    editor.close()                      # the UI's cleanup; its X window is gone

Port values go both ways as floats (protocol 0); other protocols (atom messages, e.g. a
UI's preset state) are ignored: parameters are control ports here.
"""

from __future__ import annotations

import ctypes
import math
from collections.abc import Callable, Mapping

from engine.effects.instance import PluginLoadError
from engine.effects.liblilv import (
    Feature,
    IdleInterface,
    Option,
    Resize,
    ResizeFunction,
    UiDescriptor,
    UiDescriptorFunction,
    WriteFunction,
)
from engine.effects.lv2 import (
    ATOM,
    OPTIONS,
    PARAMETERS,
    UI,
    URID_NS,
    control_inputs,
    editor_ui,
    parameter_value,
    port_value,
    world,
)
from engine.effects.spec import ParameterValue, PluginInfo

FLOAT_PROTOCOL = 0  # a port's value as one float (ui:floatProtocol)


class Lv2Editor:
    """A plugin's X11 UI inside the X window `parent_window`. Not thread-safe: one thread
    (the one that owns the window) calls every method.

    Args:
      info: the plugin (an LV2 one with `has_editor`).
      parent_window: the X window to embed into (a Qt widget's `winId()`).
      on_change: called with (parameter name, checked value) for each control the user
        changes in the UI; never for values given with `set_value`.
      values: the parameters' current values, shown at once.
      rate: the rate the plugin runs at (the chain's), for a UI that draws a response.

    Raises:
      PluginLoadError: (one line) the plugin has no X11 UI, its library does not load, or
        it refused to start.

    Attributes:
      window: the UI's own X window (a child of `parent_window`).
      size: the (width, height) in pixels the UI asked for (ui:resize), or None.
    """

    def __init__(
        self,
        info: PluginInfo,
        parent_window: int,
        on_change: Callable[[str, ParameterValue], None],
        values: Mapping[str, ParameterValue],
        rate: int,
    ):
        self.info = info
        self.size: tuple[int, int] | None = None
        self._on_change = on_change
        ui = editor_ui(info.ref.id)
        if ui is None:
            raise PluginLoadError(f"{info.ref.name} has no X11 editor this host can open")
        self._ports = control_inputs(info.ref.id)
        self._names = {port.index: name for name, port in self._ports.items()}
        try:
            library = ctypes.CDLL(ui.binary)  # never unloaded: a UI library may keep threads or atexit hooks
            descriptor_at = UiDescriptorFunction(("lv2ui_descriptor", library))
        except (OSError, AttributeError) as error:
            raise PluginLoadError(f"{info.ref.name}: its editor's library does not load ({error})") from None
        descriptor = _find_descriptor(descriptor_at, ui.uri)
        if descriptor is None:
            raise PluginLoadError(f"{info.ref.name}: its editor's library has no UI {ui.uri}")
        self._descriptor = descriptor
        self._write = WriteFunction(self._written)
        self._features = self._make_features(parent_window, rate)
        widget = ctypes.c_void_p()
        self._handle = self._descriptor.instantiate(
            ctypes.addressof(self._descriptor),
            info.ref.id.encode(),
            ui.bundle.encode(),
            self._write,
            None,
            ctypes.byref(widget),
            self._features,
        )
        if not self._handle:
            raise PluginLoadError(f"{info.ref.name}: its editor refused to start")
        self.window = int(widget.value or 0)
        self._idle = self._idle_interface()
        for name, value in values.items():
            self.set_value(name, value)

    def idle(self) -> bool:
        """Lets the UI draw and handle its events; False once it asked to be closed (or has
        been closed)."""
        if not self._handle:
            return False
        return self._idle is None or self._idle.idle(self._handle) == 0

    def set_value(self, name: str, value: ParameterValue) -> None:
        """Shows a parameter's new value in the UI (port_event), e.g. after a slider moved."""
        port = self._ports.get(name)
        if not self._handle or port is None or not self._descriptor.port_event:
            return
        number = ctypes.c_float(port_value(self.info.parameter(name), port.labels, value))
        self._descriptor.port_event(
            self._handle, port.index, ctypes.sizeof(number), FLOAT_PROTOCOL, ctypes.byref(number)
        )

    def close(self) -> None:
        """The UI's cleanup: it destroys its window. Safe to call twice."""
        if self._handle:
            self._descriptor.cleanup(self._handle)
            self._handle = None

    # ----- what the UI calls (through ctypes, on this thread, from inside idle) ----------

    def _written(self, _, index: int, size: int, protocol: int, buffer: int) -> None:
        name = self._names.get(index)
        if name is None or protocol != FLOAT_PROTOCOL or size != ctypes.sizeof(ctypes.c_float):
            return
        number = ctypes.c_float.from_address(buffer).value
        parameter = self.info.parameter(name)
        if not math.isfinite(number):
            return
        clipped = min(max(number, parameter.minimum), parameter.maximum)  # a knob may overshoot by a rounding
        self._on_change(name, parameter_value(parameter, self._ports[name].labels, clipped))

    def _resized(self, _, width: int, height: int) -> int:
        self.size = (width, height)
        return 0

    # ----- set-up -------------------------------------------------------------------------

    def _make_features(self, parent_window: int, rate: int):
        """The NULL-terminated LV2_Feature* array; everything it points to is kept on self."""
        w = world()
        self._rate = ctypes.c_float(rate)  # Dragonfly's UI requires the sample rate option
        self._options = (Option * 2)(
            Option(0, 0, w.urid(PARAMETERS + "sampleRate"), 4, w.urid(ATOM + "Float"), ctypes.addressof(self._rate))
        )  # the zeroed last entry ends the list
        self._resize = Resize(None, ResizeFunction(self._resized))
        self._feature_list = [
            Feature((UI + "parent").encode(), parent_window),
            Feature((URID_NS + "map").encode(), ctypes.addressof(w.map)),
            Feature((URID_NS + "unmap").encode(), ctypes.addressof(w.unmap)),
            Feature((OPTIONS + "options").encode(), ctypes.addressof(self._options)),
            Feature((UI + "idleInterface").encode(), None),
            Feature((UI + "resize").encode(), ctypes.addressof(self._resize)),
        ]
        return (ctypes.POINTER(Feature) * (len(self._feature_list) + 1))(
            *[ctypes.pointer(f) for f in self._feature_list]
        )

    def _idle_interface(self) -> IdleInterface | None:
        if not self._descriptor.extension_data:
            return None
        address = self._descriptor.extension_data((UI + "idleInterface").encode())
        return ctypes.cast(address, ctypes.POINTER(IdleInterface)).contents if address else None


def _find_descriptor(descriptor_at, uri: str) -> UiDescriptor | None:
    """The library's UI descriptor for `uri` (lv2ui_descriptor(0, 1, ...) until NULL)."""
    index = 0
    while descriptor := descriptor_at(index):
        if descriptor.contents.URI.decode() == uri:
            return descriptor.contents
        index += 1
    return None
