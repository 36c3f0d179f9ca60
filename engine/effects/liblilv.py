"""A ctypes binding of the part of liblilv (Debian's liblilv-0-0) that an effects host needs.

Debian bookworm ships no Python binding of lilv (python3-lilv came later), and lilv's own
`lilv.py` wraps the whole API around the same ctypes calls; these few prototypes are what
`engine.effects.lv2` uses. The library is opened on first use, so that a machine without
it only loses LV2 plugins.

    lib = lilv()                          # the CDLL with prototypes set; PluginLoadError if missing
    world = lib.lilv_world_new()
"""

from __future__ import annotations

import ctypes
import functools

from engine.effects.instance import PluginLoadError

SONAME = "liblilv-0.so.0"

c_p = ctypes.c_void_p
c_str = ctypes.c_char_p
URID = ctypes.c_uint32


# ----- LV2 C structures (lv2/core/lv2.h, lv2/urid/urid.h, lv2/options/options.h, lv2/worker/worker.h)


class Feature(ctypes.Structure):
    _fields_ = [("URI", c_str), ("data", c_p)]


MapFunction = ctypes.CFUNCTYPE(URID, c_p, c_str)
UnmapFunction = ctypes.CFUNCTYPE(c_p, c_p, URID)  # returns a char* the host keeps alive


class UridMap(ctypes.Structure):
    _fields_ = [("handle", c_p), ("map", MapFunction)]


class UridUnmap(ctypes.Structure):
    _fields_ = [("handle", c_p), ("unmap", UnmapFunction)]


class Option(ctypes.Structure):
    _fields_ = [
        ("context", ctypes.c_uint32),
        ("subject", ctypes.c_uint32),
        ("key", URID),
        ("size", ctypes.c_uint32),
        ("type", URID),
        ("value", c_p),
    ]


RespondFunction = ctypes.CFUNCTYPE(ctypes.c_int, c_p, ctypes.c_uint32, c_p)
ScheduleFunction = ctypes.CFUNCTYPE(ctypes.c_int, c_p, ctypes.c_uint32, c_p)


class WorkerSchedule(ctypes.Structure):
    _fields_ = [("handle", c_p), ("schedule_work", ScheduleFunction)]


class WorkerInterface(ctypes.Structure):
    _fields_ = [
        ("work", ctypes.CFUNCTYPE(ctypes.c_int, c_p, RespondFunction, c_p, ctypes.c_uint32, c_p)),
        ("work_response", ctypes.CFUNCTYPE(ctypes.c_int, c_p, ctypes.c_uint32, c_p)),
        ("end_run", ctypes.CFUNCTYPE(ctypes.c_int, c_p)),
    ]


class Descriptor(ctypes.Structure):
    _fields_ = [
        ("URI", c_str),
        ("instantiate", c_p),  # called through lilv_plugin_instantiate only
        ("connect_port", ctypes.CFUNCTYPE(None, c_p, ctypes.c_uint32, c_p)),
        ("activate", ctypes.CFUNCTYPE(None, c_p)),
        ("run", ctypes.CFUNCTYPE(None, c_p, ctypes.c_uint32)),
        ("deactivate", ctypes.CFUNCTYPE(None, c_p)),
        ("cleanup", c_p),  # called through lilv_instance_free only
        ("extension_data", ctypes.CFUNCTYPE(c_p, c_str)),
    ]


class Instance(ctypes.Structure):
    """lilv's LilvInstance: its instance functions are inline in lilv.h, so we call the
    descriptor directly, as they do."""

    _fields_ = [("descriptor", ctypes.POINTER(Descriptor)), ("handle", c_p), ("pimpl", c_p)]


# ----- LV2 UI structures (lv2/ui/ui.h)

# write_function(controller, port index, buffer size, protocol (0: a float), buffer)
WriteFunction = ctypes.CFUNCTYPE(None, c_p, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint32, c_p)


class UiDescriptor(ctypes.Structure):
    _fields_ = [
        ("URI", c_str),
        (
            "instantiate",  # (descriptor, plugin URI, bundle path, write, controller, &widget, features)
            ctypes.CFUNCTYPE(
                c_p, c_p, c_str, c_str, WriteFunction, c_p, ctypes.POINTER(c_p), ctypes.POINTER(ctypes.POINTER(Feature))
            ),
        ),
        ("cleanup", ctypes.CFUNCTYPE(None, c_p)),
        ("port_event", ctypes.CFUNCTYPE(None, c_p, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint32, c_p)),
        ("extension_data", ctypes.CFUNCTYPE(c_p, c_str)),
    ]


UiDescriptorFunction = ctypes.CFUNCTYPE(ctypes.POINTER(UiDescriptor), ctypes.c_uint32)  # lv2ui_descriptor(index)


class IdleInterface(ctypes.Structure):
    _fields_ = [("idle", ctypes.CFUNCTYPE(ctypes.c_int, c_p))]  # nonzero: the UI asks to be closed


ResizeFunction = ctypes.CFUNCTYPE(ctypes.c_int, c_p, ctypes.c_int, ctypes.c_int)


class Resize(ctypes.Structure):
    _fields_ = [("handle", c_p), ("ui_resize", ResizeFunction)]


GetPortValue = ctypes.CFUNCTYPE(c_p, c_str, c_p, ctypes.POINTER(ctypes.c_uint32), ctypes.POINTER(ctypes.c_uint32))
SetPortValue = ctypes.CFUNCTYPE(None, c_str, c_p, c_p, ctypes.c_uint32, ctypes.c_uint32)

_PROTOTYPES = {  # name: (result type, argument types)
    "lilv_world_new": (c_p, []),
    "lilv_world_set_option": (None, [c_p, c_str, c_p]),
    "lilv_world_load_all": (None, [c_p]),
    "lilv_world_get_all_plugins": (c_p, [c_p]),
    "lilv_world_get": (c_p, [c_p, c_p, c_p, c_p]),
    "lilv_new_uri": (c_p, [c_p, c_str]),
    "lilv_new_string": (c_p, [c_p, c_str]),
    "lilv_new_file_uri": (c_p, [c_p, c_str, c_str]),
    "lilv_node_free": (None, [c_p]),
    "lilv_node_as_uri": (c_str, [c_p]),
    "lilv_node_as_string": (c_str, [c_p]),
    "lilv_node_as_float": (ctypes.c_float, [c_p]),
    "lilv_node_is_float": (ctypes.c_bool, [c_p]),
    "lilv_node_is_int": (ctypes.c_bool, [c_p]),
    "lilv_node_equals": (ctypes.c_bool, [c_p, c_p]),
    "lilv_nodes_begin": (c_p, [c_p]),
    "lilv_nodes_get": (c_p, [c_p, c_p]),
    "lilv_nodes_next": (c_p, [c_p, c_p]),
    "lilv_nodes_is_end": (ctypes.c_bool, [c_p, c_p]),
    "lilv_nodes_free": (None, [c_p]),
    "lilv_plugins_begin": (c_p, [c_p]),
    "lilv_plugins_get": (c_p, [c_p, c_p]),
    "lilv_plugins_next": (c_p, [c_p, c_p]),
    "lilv_plugins_is_end": (ctypes.c_bool, [c_p, c_p]),
    "lilv_plugins_get_by_uri": (c_p, [c_p, c_p]),
    "lilv_plugin_get_uri": (c_p, [c_p]),
    "lilv_plugin_get_bundle_uri": (c_p, [c_p]),
    "lilv_plugin_get_library_uri": (c_p, [c_p]),
    "lilv_plugin_get_name": (c_p, [c_p]),
    "lilv_plugin_get_author_name": (c_p, [c_p]),
    "lilv_plugin_get_num_ports": (ctypes.c_uint32, [c_p]),
    "lilv_plugin_get_port_by_index": (c_p, [c_p, ctypes.c_uint32]),
    "lilv_plugin_get_required_features": (c_p, [c_p]),
    "lilv_plugin_has_extension_data": (ctypes.c_bool, [c_p, c_p]),
    "lilv_plugin_has_latency": (ctypes.c_bool, [c_p]),
    "lilv_plugin_get_latency_port_index": (ctypes.c_uint32, [c_p]),
    "lilv_plugin_get_uis": (c_p, [c_p]),  # the plugin's UIs, the caller's to free
    "lilv_uis_free": (None, [c_p]),
    "lilv_uis_begin": (c_p, [c_p]),
    "lilv_uis_get": (c_p, [c_p, c_p]),
    "lilv_uis_next": (c_p, [c_p, c_p]),
    "lilv_uis_is_end": (ctypes.c_bool, [c_p, c_p]),
    "lilv_ui_get_uri": (c_p, [c_p]),
    "lilv_ui_is_a": (ctypes.c_bool, [c_p, c_p]),
    "lilv_ui_get_bundle_uri": (c_p, [c_p]),
    "lilv_ui_get_binary_uri": (c_p, [c_p]),
    "lilv_world_load_resource": (ctypes.c_int, [c_p, c_p]),  # a UI's own description (its seeAlso files)
    "lilv_world_find_nodes": (c_p, [c_p, c_p, c_p, c_p]),  # nodes, the caller's to free
    "lilv_file_uri_parse": (c_p, [c_str, c_p]),  # a char* path, freed with lilv_free
    "lilv_plugin_instantiate": (
        ctypes.POINTER(Instance),
        [c_p, ctypes.c_double, ctypes.POINTER(ctypes.POINTER(Feature))],
    ),
    "lilv_instance_free": (None, [ctypes.POINTER(Instance)]),
    "lilv_port_is_a": (ctypes.c_bool, [c_p, c_p, c_p]),
    "lilv_port_has_property": (ctypes.c_bool, [c_p, c_p, c_p]),
    "lilv_port_get_symbol": (c_p, [c_p, c_p]),
    "lilv_port_get_name": (c_p, [c_p, c_p]),
    "lilv_port_get": (c_p, [c_p, c_p, c_p]),  # one node, the caller's to free
    "lilv_port_get_range": (None, [c_p, c_p, ctypes.POINTER(c_p), ctypes.POINTER(c_p), ctypes.POINTER(c_p)]),
    "lilv_port_get_scale_points": (c_p, [c_p, c_p]),
    "lilv_scale_points_begin": (c_p, [c_p]),
    "lilv_scale_points_get": (c_p, [c_p, c_p]),
    "lilv_scale_points_next": (c_p, [c_p, c_p]),
    "lilv_scale_points_is_end": (ctypes.c_bool, [c_p, c_p]),
    "lilv_scale_points_free": (None, [c_p]),
    "lilv_scale_point_get_label": (c_p, [c_p]),
    "lilv_scale_point_get_value": (c_p, [c_p]),
    "lilv_state_new_from_instance": (
        c_p,
        [
            c_p,
            ctypes.POINTER(Instance),
            ctypes.POINTER(UridMap),
            c_str,
            c_str,
            c_str,
            c_str,
            GetPortValue,
            c_p,
            ctypes.c_uint32,
            ctypes.POINTER(ctypes.POINTER(Feature)),
        ],
    ),
    "lilv_state_to_string": (c_p, [c_p, ctypes.POINTER(UridMap), ctypes.POINTER(UridUnmap), c_p, c_str, c_str]),
    "lilv_state_new_from_string": (c_p, [c_p, ctypes.POINTER(UridMap), c_str]),
    "lilv_state_restore": (
        None,
        [c_p, ctypes.POINTER(Instance), SetPortValue, c_p, ctypes.c_uint32, ctypes.POINTER(ctypes.POINTER(Feature))],
    ),
    "lilv_state_free": (None, [c_p]),
    "lilv_free": (None, [c_p]),
}


@functools.cache
def lilv() -> ctypes.CDLL:
    """liblilv with its prototypes set; PluginLoadError when it is not installed."""
    try:
        lib = ctypes.CDLL(SONAME)
    except OSError:
        raise PluginLoadError(f"LV2 needs {SONAME} (Debian: apt install liblilv-0-0)") from None
    for name, (result, arguments) in _PROTOTYPES.items():
        function = getattr(lib, name)
        function.restype, function.argtypes = result, arguments
    return lib


def iterate(kind: str, collection: int | None):
    """The items of a lilv collection ("nodes", "plugins", "scale_points")."""
    lib = lilv()
    if not collection:
        return
    begin, get, next_, is_end = (getattr(lib, f"lilv_{kind}_{f}") for f in ("begin", "get", "next", "is_end"))
    cursor = begin(collection)
    while not is_end(collection, cursor):
        yield get(collection, cursor)
        cursor = next_(collection, cursor)
