"""LV2 plugins (the Linux plugin standard), hosted through liblilv (`engine.effects.liblilv`).

The host gives plugins the features they commonly require: URID map and unmap, options
(sample rate, block lengths), bounded block length, and a worker. The worker runs its
jobs at once on the processing thread (simple, and what offline hosts do; a plugin's
worker jobs are short file or table loads). Every port is connected: audio ports to
numpy buffers, control ports to floats (the parameters, by port symbol), CV ports to
silence, atom ports to empty sequences.

    info = describe_lv2("http://calf.sourceforge.net/plugins/Reverb")
    plugin = open_lv2(info, rate=16000, max_block=4096)
    out = plugin.process(block)        # float32 [channels, n] -> [channels out, n]
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import math
import os
import struct
import sys
import urllib.parse
from pathlib import Path

import numpy as np

from engine.effects.instance import PluginInstance, PluginLoadError
from engine.effects.liblilv import (
    Feature,
    GetPortValue,
    MapFunction,
    Option,
    RespondFunction,
    ScheduleFunction,
    SetPortValue,
    UnmapFunction,
    UridMap,
    UridUnmap,
    WorkerInterface,
    WorkerSchedule,
    iterate,
    lilv,
)
from engine.effects.spec import ParameterInfo, ParameterKind, ParameterValue, PluginFormat, PluginInfo, PluginRef

LV2 = "http://lv2plug.in/ns/lv2core#"
ATOM = "http://lv2plug.in/ns/ext/atom#"
URID_NS = "http://lv2plug.in/ns/ext/urid#"
OPTIONS = "http://lv2plug.in/ns/ext/options#"
BUF_SIZE = "http://lv2plug.in/ns/ext/buf-size#"
WORKER = "http://lv2plug.in/ns/ext/worker#"
STATE = "http://lv2plug.in/ns/ext/state#"
UNITS = "http://lv2plug.in/ns/extensions/units#"
PARAMETERS = "http://lv2plug.in/ns/ext/parameters#"
PORT_PROPS = "http://lv2plug.in/ns/ext/port-props#"
UI = "http://lv2plug.in/ns/extensions/ui#"
# Features this host provides; a plugin that requires any other is refused with its name.
PROVIDED_FEATURES = frozenset(
    {
        URID_NS + "map",
        URID_NS + "unmap",
        OPTIONS + "options",
        BUF_SIZE + "boundedBlockLength",
        WORKER + "schedule",
        LV2 + "isLive",
        LV2 + "inPlaceBroken",
    }
)
# Features the editor host (`engine.effects.lv2_ui`) provides to a plugin's X11 UI.
UI_FEATURES = frozenset(
    {
        URID_NS + "map",
        URID_NS + "unmap",
        OPTIONS + "options",
        UI + "parent",
        UI + "idleInterface",
        UI + "resize",
    }
)
# Lilv's default search path on Linux (and Debian's multiarch folder), after $LV2_PATH.
SYSTEM_FOLDERS = ("~/.lv2", "/usr/local/lib/lv2", "/usr/lib/lv2", "/usr/lib/x86_64-linux-gnu/lv2")
ATOM_CAPACITY = 8192  # bytes per atom port buffer
STATE_URI = b"urn:harmonic:state"
STATE_FLAGS = 1 | 2  # LV2_STATE_IS_POD | LV2_STATE_IS_PORTABLE: plain data, no file paths


def lv2_folders() -> list[Path]:
    """$LV2_PATH's folders (":"-separated) or the system ones, then <venv>/plugins/lv2."""
    listed = [p for p in os.environ.get("LV2_PATH", "").split(os.pathsep) if p] or SYSTEM_FOLDERS
    return [Path(p).expanduser() for p in listed] + [Path(sys.prefix) / "plugins" / "lv2"]


class _World:
    """The process's lilv world (every bundle's description, loaded once) and its URIDs."""

    def __init__(self) -> None:
        self.lib = lilv()
        self.world = self.lib.lilv_world_new()
        path = os.pathsep.join(map(str, lv2_folders())).encode()
        path_node = self.lib.lilv_new_string(self.world, path)
        self.lib.lilv_world_set_option(self.world, b"http://drobilla.net/ns/lilv#lv2-path", path_node)
        self.lib.lilv_node_free(path_node)
        self.lib.lilv_world_load_all(self.world)
        self.plugins = self.lib.lilv_world_get_all_plugins(self.world)
        self._nodes: dict[str, int] = {}
        self._urids: dict[str, int] = {}
        self._uris: dict[int, ctypes.Array] = {}  # C strings handed out by unmap
        # ctypes callbacks must outlive every plugin that may call them: they live here.
        self.map = UridMap(None, MapFunction(lambda _, uri: self.urid(uri.decode())))
        self.unmap = UridUnmap(None, UnmapFunction(self._unmap))

    def node(self, uri: str) -> int:
        """A URI node, made once and kept (lilv compares nodes, it does not own these)."""
        if uri not in self._nodes:
            self._nodes[uri] = self.lib.lilv_new_uri(self.world, uri.encode())
        return self._nodes[uri]

    def urid(self, uri: str) -> int:
        if uri not in self._urids:
            self._urids[uri] = len(self._urids) + 1
            self._uris[self._urids[uri]] = ctypes.create_string_buffer(uri.encode())
        return self._urids[uri]

    def _unmap(self, _, urid: int) -> int | None:
        text = self._uris.get(urid)
        return None if text is None else ctypes.addressof(text)

    def plugin(self, uri: str) -> int:
        plugin = self.lib.lilv_plugins_get_by_uri(self.plugins, self.node(uri))
        if not plugin:
            raise PluginLoadError(f"{uri}: no such LV2 plugin in {os.pathsep.join(map(str, lv2_folders()))}")
        return plugin

    def text(self, node: int | None, owned: bool = False) -> str:
        """A node as text ("" for none); frees it when the caller owns it."""
        if not node:
            return ""
        text = self.lib.lilv_node_as_string(node).decode(errors="replace")
        if owned:
            self.lib.lilv_node_free(node)
        return text


@functools.cache
def world() -> _World:
    return _World()


def bundle_plugins(path: str) -> list[PluginInfo]:
    """The effects (plugins with audio in and out; not instruments) of the LV2 bundle
    folder `path`; PluginLoadError when its manifest declares a plugin lilv cannot read."""
    w = world()
    bundle_uri = Path(path).resolve().as_uri() + "/"
    plugins = [
        plugin
        for plugin in iterate("plugins", w.plugins)
        if w.lib.lilv_node_as_uri(w.lib.lilv_plugin_get_bundle_uri(plugin)).decode() == bundle_uri
    ]
    infos = [describe_lv2(w.text(w.lib.lilv_plugin_get_uri(plugin))) for plugin in plugins if _is_effect(w, plugin)]
    manifest = Path(path) / "manifest.ttl"
    if not plugins and manifest.exists() and "Plugin" in manifest.read_text(errors="replace"):
        raise PluginLoadError(f"{path}: its manifest declares a plugin that lilv cannot read (see lilv's messages)")
    return infos


def _is_effect(w: _World, plugin: int) -> bool:
    audio = [port for port in _ports(w, plugin) if _is(w, plugin, port, LV2 + "AudioPort")]
    return any(_is(w, plugin, port, LV2 + "InputPort") for port in audio) and any(
        _is(w, plugin, port, LV2 + "OutputPort") for port in audio
    )


def describe_lv2(uri: str) -> PluginInfo:
    w = world()
    plugin = w.plugin(uri)
    name = w.text(w.lib.lilv_plugin_get_name(plugin), owned=True) or uri
    vendor = w.text(w.lib.lilv_plugin_get_author_name(plugin), owned=True)
    parameters = tuple(
        _parameter(w, plugin, port)
        for port in _ports(w, plugin)
        if _is(w, plugin, port, LV2 + "ControlPort") and _is(w, plugin, port, LV2 + "InputPort")
    )
    has_editor = editor_ui(uri) is not None
    return PluginInfo(PluginRef(PluginFormat.LV2, uri, name), vendor, parameters, has_editor=has_editor)


@dataclasses.dataclass(frozen=True)
class EditorUi:
    """A plugin's X11 UI: its URI, its shared library, and its bundle folder ("/"-ended, as
    a UI's `instantiate` takes it)."""

    uri: str
    binary: str
    bundle: str


def editor_ui(uri: str) -> EditorUi | None:
    """The plugin's first X11 UI that needs no feature beyond `UI_FEATURES`; None if none."""
    w = world()
    plugin = w.plugin(uri)
    uis = w.lib.lilv_plugin_get_uis(plugin)
    found = None
    for ui in iterate("uis", uis):
        if not w.lib.lilv_ui_is_a(ui, w.node(UI + "X11UI")):
            continue
        ui_node = w.lib.lilv_ui_get_uri(ui)
        w.lib.lilv_world_load_resource(w.world, ui_node)  # the UI's own description: what it requires
        required = w.lib.lilv_world_find_nodes(w.world, ui_node, w.node(LV2 + "requiredFeature"), None)
        needs = {w.text(node) for node in iterate("nodes", required)}
        w.lib.lilv_nodes_free(required)
        if needs <= UI_FEATURES:
            binary, bundle = (
                _file_path(w, node) for node in (w.lib.lilv_ui_get_binary_uri(ui), w.lib.lilv_ui_get_bundle_uri(ui))
            )
            found = EditorUi(w.text(ui_node), binary, bundle.rstrip("/") + "/")
            break
    w.lib.lilv_uis_free(uis)
    return found


@dataclasses.dataclass(frozen=True)
class ControlInput:
    """An input control port: its index, and label -> port value for an enumeration."""

    index: int
    labels: dict[str, float]


def control_inputs(uri: str) -> dict[str, ControlInput]:
    """The plugin's input control ports (its parameters) by symbol."""
    w = world()
    plugin = w.plugin(uri)
    return {
        w.text(w.lib.lilv_port_get_symbol(plugin, port)): ControlInput(index, _scale_points(w, plugin, port))
        for index, port in enumerate(_ports(w, plugin))
        if _is(w, plugin, port, LV2 + "ControlPort") and _is(w, plugin, port, LV2 + "InputPort")
    }


def port_value(parameter: ParameterInfo, labels: dict[str, float], value: ParameterValue) -> float:
    """A parameter's value as its control port's float (`labels`: an enumeration's values)."""
    if parameter.kind is not ParameterKind.CHOICE:
        return float(value)
    if not isinstance(value, str):
        raise TypeError(f"{parameter.name} takes one of {', '.join(labels)}, got {value!r}")
    return labels[value]


def parameter_value(parameter: ParameterInfo, labels: dict[str, float], value: float) -> ParameterValue:
    """The inverse of `port_value`: a switch is on above 0.5, a choice is the nearest label."""
    if parameter.kind is ParameterKind.BOOL:
        return value > 0.5
    if parameter.kind is ParameterKind.CHOICE:
        return min(labels.items(), key=lambda item: abs(item[1] - value))[0]
    return float(value)


def open_lv2(info: PluginInfo, rate: int, max_block: int) -> Lv2Instance:
    return Lv2Instance(info, rate, max_block)


class Lv2Instance(PluginInstance):
    """A running LV2 plugin, activated and warmed with one `max_block` block of silence."""

    def __init__(self, info: PluginInfo, rate: int, max_block: int):
        self.info = info
        self.rate = rate
        self.max_block = max_block
        self._world = w = world()
        self._lib = w.lib
        self._plugin = w.plugin(info.ref.id)
        self._check_features()
        self._features = self._make_features(rate, max_block)
        self._instance = w.lib.lilv_plugin_instantiate(self._plugin, rate, self._features)
        if not self._instance:
            raise PluginLoadError(f"{info.ref.id}: {_why_not_instantiated(w, self._plugin, rate)}")
        self._descriptor = self._instance.contents.descriptor.contents
        self._handle = self._instance.contents.handle
        self._worker = self._worker_interface()
        self._responses: list[bytes] = []
        try:
            self._connect_ports()
        except PluginLoadError:
            w.lib.lilv_instance_free(self._instance)
            raise
        self.input_channels = min(len(self._audio_in), 2)
        self._activate()
        self.process(np.zeros((self.input_channels, max_block), np.float32))
        self.latency_samples = int(self._latency.value) if self._latency is not None else 0

    # ----- processing -------------------------------------------------------------------

    def process(self, audio: np.ndarray) -> np.ndarray:
        n = audio.shape[1]
        for channel, buffer in enumerate(self._audio_in):
            buffer[:n] = audio[min(channel, audio.shape[0] - 1)]
        for atom_buffer in self._atom_in:  # an empty sequence: no events this block
            struct.pack_into("<IIII", atom_buffer, 0, 8, self._world.urid(ATOM + "Sequence"), 0, 0)
        for atom_buffer in self._atom_out:  # the space the plugin may fill
            struct.pack_into("<II", atom_buffer, 0, ATOM_CAPACITY - 8, self._world.urid(ATOM + "Chunk"))
        self._descriptor.run(self._handle, n)
        self._deliver_work_responses()
        return np.stack([buffer[:n] for buffer in self._audio_out[:2]])

    def set_parameter(self, name: str, value: ParameterValue) -> None:
        labels = self._choice_values.get(name, {})
        self._controls[name].value = port_value(self.info.parameter(name), labels, value)

    def parameter_values(self) -> dict[str, ParameterValue]:
        return {
            p.name: parameter_value(p, self._choice_values.get(p.name, {}), self._controls[p.name].value)
            for p in self.info.parameters
        }

    def reset(self) -> None:
        """LV2 plugins clear their state when activated again."""
        if self._descriptor.deactivate:
            self._descriptor.deactivate(self._handle)
        self._activate()

    def close(self) -> None:
        if self._instance:
            if self._descriptor.deactivate:
                self._descriptor.deactivate(self._handle)
            self._lib.lilv_instance_free(self._instance)
            self._instance = None

    # ----- state ------------------------------------------------------------------------

    def save_state(self) -> bytes | None:
        """The plugin's state:interface state as Turtle; None for plugins without one (their
        control ports, the parameters, are all there is)."""
        if not self._lib.lilv_plugin_has_extension_data(self._plugin, self._world.node(STATE + "interface")):
            return None
        state = self._lib.lilv_state_new_from_instance(
            self._plugin,
            self._instance,
            ctypes.byref(self._world.map),
            None,
            None,
            None,
            None,
            self._get_port_value,
            None,
            STATE_FLAGS,
            self._features,
        )
        text = self._lib.lilv_state_to_string(
            self._world.world, ctypes.byref(self._world.map), ctypes.byref(self._world.unmap), state, STATE_URI, None
        )
        self._lib.lilv_state_free(state)
        saved = ctypes.string_at(text)
        self._lib.lilv_free(text)
        return saved

    def load_state(self, state: bytes) -> None:
        loaded = self._lib.lilv_state_new_from_string(self._world.world, ctypes.byref(self._world.map), state)
        if not loaded:
            raise PluginLoadError(f"{self.info.ref.name}: its saved state is not LV2 state lilv reads")
        self._lib.lilv_state_restore(loaded, self._instance, self._set_port_value, None, 0, self._features)
        self._lib.lilv_state_free(loaded)

    # ----- set-up -----------------------------------------------------------------------

    def _check_features(self) -> None:
        required = self._lib.lilv_plugin_get_required_features(self._plugin)
        missing = sorted({self._world.text(f) for f in iterate("nodes", required)} - PROVIDED_FEATURES)
        self._lib.lilv_nodes_free(required)
        if missing:
            raise PluginLoadError(f"{self.info.ref.id}: needs LV2 features this host lacks: {', '.join(missing)}")

    def _make_features(self, rate: int, max_block: int):
        """The NULL-terminated LV2_Feature* array; everything it points to is kept on self."""
        w = self._world
        self._block_lengths = [ctypes.c_int32(1), ctypes.c_int32(max_block), ctypes.c_int32(max_block)]
        self._rate_value = ctypes.c_float(rate)
        entries: list[tuple[str, ctypes.c_int32 | ctypes.c_float, str]] = [
            (BUF_SIZE + "minBlockLength", self._block_lengths[0], ATOM + "Int"),
            (BUF_SIZE + "maxBlockLength", self._block_lengths[1], ATOM + "Int"),
            (BUF_SIZE + "nominalBlockLength", self._block_lengths[2], ATOM + "Int"),
            (PARAMETERS + "sampleRate", self._rate_value, ATOM + "Float"),
        ]
        self._options = (Option * (len(entries) + 1))(
            *[
                Option(0, 0, w.urid(key), ctypes.sizeof(value), w.urid(kind), _address(value))
                for key, value, kind in entries
            ]
        )  # the zeroed last entry ends the list
        self._schedule = WorkerSchedule(None, ScheduleFunction(self._schedule_work))
        self._respond = RespondFunction(self._respond_work)
        self._feature_list = [
            Feature(URID_NS.encode() + b"map", _address(w.map)),
            Feature(URID_NS.encode() + b"unmap", _address(w.unmap)),
            Feature(OPTIONS.encode() + b"options", _address(self._options)),
            Feature(BUF_SIZE.encode() + b"boundedBlockLength", None),
            Feature(WORKER.encode() + b"schedule", _address(self._schedule)),
        ]
        pointers = (ctypes.POINTER(Feature) * (len(self._feature_list) + 1))(
            *[ctypes.pointer(f) for f in self._feature_list]
        )
        self._get_port_value = GetPortValue(self._port_value_for_state)
        self._set_port_value = SetPortValue(self._port_value_from_state)
        return pointers

    def _connect_ports(self) -> None:
        """Connects every port; PluginLoadError for a required port of a kind we cannot feed."""
        w = self._world
        self._audio_in: list[np.ndarray] = []
        self._audio_out: list[np.ndarray] = []
        self._atom_in: list[ctypes.Array[ctypes.c_uint8]] = []
        self._atom_out: list[ctypes.Array[ctypes.c_uint8]] = []
        self._controls: dict[str, ctypes.c_float] = {}
        self._control_outputs: list[ctypes.c_float] = []
        self._buffers: list[np.ndarray] = []  # CV silence, kept alive while connected
        choices = {p.name for p in self.info.parameters if p.kind is ParameterKind.CHOICE}
        self._choice_values: dict[str, dict[str, float]] = {}  # symbol -> label -> port value
        latency_index = (
            self._lib.lilv_plugin_get_latency_port_index(self._plugin)
            if self._lib.lilv_plugin_has_latency(self._plugin)
            else None
        )
        self._latency = None
        for index, port in enumerate(_ports(w, self._plugin)):
            is_input = _is(w, self._plugin, port, LV2 + "InputPort")
            symbol = w.text(self._lib.lilv_port_get_symbol(self._plugin, port))
            if _is(w, self._plugin, port, LV2 + "AudioPort"):
                buffer = np.zeros(self.max_block, np.float32)
                (self._audio_in if is_input else self._audio_out).append(buffer)
                address = buffer.ctypes.data
            elif _is(w, self._plugin, port, LV2 + "ControlPort"):
                value = ctypes.c_float(_default(w, self._plugin, port))
                if is_input:
                    self._controls[symbol] = value
                    if symbol in choices:
                        self._choice_values[symbol] = _scale_points(w, self._plugin, port)
                else:
                    self._control_outputs.append(value)
                    if index == latency_index:
                        self._latency = value
                address = ctypes.addressof(value)
            elif _is(w, self._plugin, port, LV2 + "CVPort"):
                buffer = np.zeros(self.max_block, np.float32)
                self._buffers.append(buffer)
                address = buffer.ctypes.data
            elif _is(w, self._plugin, port, ATOM + "AtomPort"):
                atom_buffer = (ctypes.c_uint8 * ATOM_CAPACITY)()
                (self._atom_in if is_input else self._atom_out).append(atom_buffer)
                address = ctypes.addressof(atom_buffer)
            elif self._lib.lilv_port_has_property(self._plugin, port, w.node(LV2 + "connectionOptional")):
                address = None
            else:
                raise PluginLoadError(f"{self.info.ref.id}: port {symbol!r} is of a kind this host cannot connect")
            self._descriptor.connect_port(self._handle, index, address)
        if not self._audio_in or not self._audio_out:
            missing = "input" if not self._audio_in else "output"
            raise PluginLoadError(f"{self.info.ref.id}: not an effect (it has no audio {missing})")

    def _activate(self) -> None:
        if self._descriptor.activate:
            self._descriptor.activate(self._handle)

    # ----- worker and state callbacks (called by the plugin, through ctypes) --------------

    def _worker_interface(self) -> WorkerInterface | None:
        if not self._descriptor.extension_data:
            return None
        address = self._descriptor.extension_data(WORKER.encode() + b"interface")
        return ctypes.cast(address, ctypes.POINTER(WorkerInterface)).contents if address else None

    def _schedule_work(self, _, size: int, data: int) -> int:
        if self._worker is None:
            return 1  # LV2_WORKER_ERR_UNKNOWN
        return self._worker.work(self._handle, self._respond, None, size, data)

    def _respond_work(self, _, size: int, data: int) -> int:
        self._responses.append(ctypes.string_at(data, size))
        return 0

    def _deliver_work_responses(self) -> None:
        if self._worker is None:
            return
        while self._responses:
            response = self._responses.pop(0)
            self._worker.work_response(self._handle, len(response), response)
        if self._worker.end_run:
            self._worker.end_run(self._handle)

    def _port_value_for_state(self, symbol: bytes, _, size, kind) -> int | None:
        value = self._controls.get(symbol.decode())
        if value is None:
            return None
        size[0], kind[0] = ctypes.sizeof(value), self._world.urid(ATOM + "Float")
        return ctypes.addressof(value)

    def _port_value_from_state(self, symbol: bytes, _, value: int, size: int, kind: int) -> None:
        control = self._controls.get(symbol.decode())
        if control is not None and kind == self._world.urid(ATOM + "Float") and size == 4:
            control.value = ctypes.c_float.from_address(value).value


def _why_not_instantiated(w: _World, plugin: int, rate: int) -> str:
    """lilv says why only on stderr: a library that does not load (Debian's swh-lv2 FFT
    plugins miss fftw's symbols) is loaded again here for the loader's message."""
    library = urllib.parse.urlparse(w.text(w.lib.lilv_plugin_get_library_uri(plugin)))
    try:
        ctypes.CDLL(urllib.parse.unquote(library.path))
    except OSError as error:
        return f"its library does not load ({error})"
    return f"the plugin refused to start at {rate} Hz (lilv could not instantiate it)"


def _file_path(w: _World, node: int) -> str:
    """A file: URI node as a local path."""
    path = w.lib.lilv_file_uri_parse(w.lib.lilv_node_as_uri(node), None)
    text = ctypes.string_at(path).decode()
    w.lib.lilv_free(path)
    return text


def _address(value) -> int:
    """Where a ctypes object lives, as a void pointer for an LV2 struct."""
    return ctypes.addressof(value)


def _ports(w: _World, plugin: int) -> list[int]:
    return [w.lib.lilv_plugin_get_port_by_index(plugin, i) for i in range(w.lib.lilv_plugin_get_num_ports(plugin))]


def _is(w: _World, plugin: int, port: int, port_class: str) -> bool:
    return w.lib.lilv_port_is_a(plugin, port, w.node(port_class))


def _range(w: _World, plugin: int, port: int) -> tuple[float | None, float | None, float | None]:
    """(default, minimum, maximum) as the plugin declares them, None where it does not."""
    nodes = [ctypes.c_void_p() for _ in range(3)]
    w.lib.lilv_port_get_range(plugin, port, *map(ctypes.byref, nodes))
    values: list[float | None] = []
    for node in nodes:
        values.append(w.lib.lilv_node_as_float(node) if node.value else None)
        if node.value:
            w.lib.lilv_node_free(node)
    default, minimum, maximum = values
    return default, minimum, maximum


def _default(w: _World, plugin: int, port: int) -> float:
    default, minimum, maximum = _range(w, plugin, port)
    if default is not None and math.isfinite(default):
        return default
    return minimum if minimum is not None else 0.0


def _scale_points(w: _World, plugin: int, port: int) -> dict[str, float]:
    """label -> value of an enumeration port."""
    points = w.lib.lilv_port_get_scale_points(plugin, port)
    labels = {
        w.text(w.lib.lilv_scale_point_get_label(p)): w.lib.lilv_node_as_float(w.lib.lilv_scale_point_get_value(p))
        for p in iterate("scale_points", points)
    }
    if points:
        w.lib.lilv_scale_points_free(points)
    return labels


def _parameter(w: _World, plugin: int, port: int) -> ParameterInfo:
    symbol = w.text(w.lib.lilv_port_get_symbol(plugin, port))
    label = w.text(w.lib.lilv_port_get_name(plugin, port), owned=True) or symbol
    default, minimum, maximum = _range(w, plugin, port)
    minimum = 0.0 if minimum is None else minimum
    maximum = max(minimum, 1.0 if maximum is None else maximum)
    default = min(max(_default(w, plugin, port), minimum), maximum)
    if w.lib.lilv_port_has_property(plugin, port, w.node(LV2 + "toggled")):
        return ParameterInfo(symbol, label, "", ParameterKind.BOOL, 0.0, 1.0, default > 0.5)
    points = _scale_points(w, plugin, port)
    if points and w.lib.lilv_port_has_property(plugin, port, w.node(LV2 + "enumeration")):
        choices = tuple(points)
        nearest = min(choices, key=lambda label_: abs(points[label_] - default))
        return ParameterInfo(symbol, label, "", ParameterKind.CHOICE, 0.0, len(choices) - 1.0, nearest, choices)
    return ParameterInfo(symbol, label, _unit(w, plugin, port), ParameterKind.FLOAT, minimum, maximum, default)


def _unit(w: _World, plugin: int, port: int) -> str:
    """The port's unit symbol ("dB", "ms"), from its units:unit resource."""
    unit = w.lib.lilv_port_get(plugin, port, w.node(UNITS + "unit"))
    if not unit:
        return ""
    symbol = w.text(w.lib.lilv_world_get(w.world, unit, w.node(UNITS + "symbol"), None), owned=True)
    w.lib.lilv_node_free(unit)
    return symbol
