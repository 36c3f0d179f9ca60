"""Plugins that pedalboard runs: its built-in effects and VST3 bundles.

pedalboard keeps a plugin's state across calls with `reset=False`. It re-initialises a
plugin when a block is larger than any before, which cuts a reverb's tail: each plugin
processes one block of the largest size (silence) when it is opened.
"""

from __future__ import annotations

import enum

import numpy as np
import pedalboard

from engine.effects.instance import PluginInstance, PluginLoadError
from engine.effects.spec import ParameterKind, ParameterValue, PluginInfo


class PedalboardInstance(PluginInstance):
    """A pedalboard `Plugin` (built-in or VST3) at `rate`, warmed with a `max_block` block.

    Args:
      plugin: the pedalboard plugin.
      info: its description; parameter names are the plugin's Python attribute names.
      rate: the rate it runs at, Hz.
      max_block: the largest block `process` will get.
      choice_types: for a built-in's choice parameters, the (pybind11) enum whose member
        names are the choices (LadderFilter.Mode; pedalboard's stubs type it as an Enum).
    """

    def __init__(
        self,
        plugin: pedalboard.Plugin,
        info: PluginInfo,
        rate: int,
        max_block: int,
        choice_types: dict[str, type[enum.Enum]] | None = None,
    ):
        self.plugin = plugin
        self.info = info
        self.rate = rate
        self._choice_types = choice_types or {}
        self._kinds = {p.name: p.kind for p in info.parameters}
        self.latency_samples = int(getattr(plugin, "reported_latency_samples", 0) or 0)
        silence = np.zeros((1, max_block), np.float32)
        try:
            self.plugin.process(silence, rate, reset=False)
            self.input_channels = 1
        except (ValueError, RuntimeError):  # a stereo-only plugin refuses one channel
            try:
                self.plugin.process(np.zeros((2, max_block), np.float32), rate, reset=False)
            except (ValueError, RuntimeError) as error:
                raise PluginLoadError(f"{info.ref.name} processes neither mono nor stereo: {error}") from None
            self.input_channels = 2

    def process(self, audio: np.ndarray) -> np.ndarray:
        return self.plugin.process(audio, self.rate, reset=False)

    def set_parameter(self, name: str, value: ParameterValue) -> None:
        choice_type = self._choice_types.get(name)
        if choice_type is None:
            setattr(self.plugin, name, value)
        elif isinstance(value, str):
            setattr(self.plugin, name, choice_type.__members__[value])
        else:
            raise TypeError(f"{name} takes one of {', '.join(choice_type.__members__)}, got {value!r}")

    def parameter_values(self) -> dict[str, ParameterValue]:
        return {name: _plain(getattr(self.plugin, name), kind) for name, kind in self._kinds.items()}

    def save_state(self) -> bytes | None:
        return bytes(self.plugin.raw_state) if isinstance(self.plugin, pedalboard.VST3Plugin) else None

    def load_state(self, state: bytes) -> None:
        if isinstance(self.plugin, pedalboard.VST3Plugin):
            self.plugin.raw_state = state

    def reset(self) -> None:
        self.plugin.reset()


def _plain(value, kind: ParameterKind) -> ParameterValue:
    """A parameter's value as JSON takes it (pedalboard returns wrapped floats and enums)."""
    if kind is ParameterKind.BOOL:
        return bool(value)
    if kind is ParameterKind.CHOICE:
        return getattr(value, "name", None) or str(value)
    return float(value)
