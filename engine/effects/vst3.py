"""VST3 bundles, hosted in-process by pedalboard (JUCE).

A parameter's name is pedalboard's Python name for it ("decay_s"), its label the
plugin's own ("Decay"), its unit the plugin's label ("s"). The opaque state is
pedalboard's `raw_state` (the VST3 component and controller state).
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import pedalboard

from engine.effects.instance import PluginLoadError
from engine.effects.pedalboard_host import PedalboardInstance
from engine.effects.spec import ParameterInfo, ParameterKind, PluginFormat, PluginInfo, PluginRef

# Where VST3 bundles live on Linux (the VST3 SDK's list), after $VST3_PATH; the last is
# this environment's own folder, where scripts/setup unpacks the test plugin.
SYSTEM_FOLDERS = ("~/.vst3", "/usr/lib/vst3", "/usr/local/lib/vst3")


def vst3_folders() -> list[Path]:
    """$VST3_PATH's folders (separated by ":"), the system folders, then <venv>/plugins/vst3."""
    listed = [p for p in os.environ.get("VST3_PATH", "").split(os.pathsep) if p]
    return [Path(p).expanduser() for p in (*listed, *SYSTEM_FOLDERS)] + [Path(sys.prefix) / "plugins" / "vst3"]


def load_vst3(path: str) -> pedalboard.VST3Plugin:
    """Loads the bundle's first plugin; PluginLoadError (one line) when it cannot."""
    if not Path(path).exists():
        raise PluginLoadError(f"{path}: no such VST3 bundle")
    try:
        return pedalboard.VST3Plugin(path)
    except (ImportError, RuntimeError, ValueError) as error:  # JUCE's reasons come as these
        raise PluginLoadError(f"{path}: {' '.join(str(error).split())}") from None


def describe_vst3(plugin: pedalboard.VST3Plugin, path: str) -> PluginInfo:
    # pedalboard adds `parameters` to its native plugin classes at import, through a Python
    # mixin (pedalboard/_pedalboard.py); its stubs of the native classes do not have it.
    described = plugin.parameters.items()  # type: ignore[attr-defined]
    parameters = tuple(_parameter(name, parameter, getattr(plugin, name)) for name, parameter in described)
    ref = PluginRef(PluginFormat.VST3, path, plugin.name)
    # pedalboard does not say whether a plugin has an editor (show_editor raises if not):
    # every VST3 is offered one, run in a child process (engine.effects.vst3_editor).
    latency = int(plugin.reported_latency_samples or 0)
    return PluginInfo(ref, plugin.manufacturer_name or "", parameters, latency, has_editor=True)


def open_vst3(path: str, rate: int, max_block: int) -> PedalboardInstance:
    """The bundle's plugin, loaded once and described from that load."""
    plugin = load_vst3(path)
    return PedalboardInstance(plugin, describe_vst3(plugin, path), rate, max_block)


def _parameter(name: str, parameter, value) -> ParameterInfo:
    label, unit = parameter.name, parameter.label or ""
    if parameter.type is bool:
        return ParameterInfo(name, label, unit, ParameterKind.BOOL, 0.0, 1.0, bool(value))
    if parameter.type is str:
        choices = tuple(map(str, parameter.valid_values))
        return ParameterInfo(name, label, unit, ParameterKind.CHOICE, 0.0, len(choices) - 1.0, str(value), choices)
    low, high, _ = parameter.range
    low, high = (0.0, 1.0) if low is None or high is None or not math.isfinite(low + high) else (low, high)
    return ParameterInfo(name, label, unit, ParameterKind.FLOAT, float(low), float(high), float(value))
