"""A loaded plugin, whatever its format: what `EffectsChain` drives block by block."""

from __future__ import annotations

import abc

import numpy as np

from engine.effects.spec import ParameterValue, PluginInfo


class PluginLoadError(Exception):
    """A plugin cannot be loaded or run at all; the message says why, in one line."""


class PluginInstance(abc.ABC):
    """One running plugin at a fixed rate. Not thread-safe: one thread drives it.

    Attributes:
      info: what the plugin is and its parameters.
      input_channels: the channels `process` takes (1 or 2); the chain duplicates a mono
        signal for a stereo-only plugin and mixes a stereo one down for a mono one.
      latency_samples: the delay the plugin reports, at its own rate.
    """

    info: PluginInfo
    input_channels: int
    latency_samples: int

    @abc.abstractmethod
    def process(self, audio: np.ndarray) -> np.ndarray:
        """float32 [input_channels, n] -> float32 [channels out, n]; state kept across calls."""

    @abc.abstractmethod
    def set_parameter(self, name: str, value: ParameterValue) -> None:
        """Sets a parameter, `value` already checked against its `ParameterInfo`."""

    @abc.abstractmethod
    def parameter_values(self) -> dict[str, ParameterValue]:
        """The current value of every parameter, by name."""

    def save_state(self) -> bytes | None:
        """The plugin's own opaque state, or None when its parameters say everything."""
        return None

    def load_state(self, state: bytes) -> None:  # noqa: B027 - a plugin without opaque state has none to load
        """Restores what `save_state` returned."""

    @abc.abstractmethod
    def reset(self) -> None:
        """Clears what the plugin rings with (tails, delay lines), keeping its parameters."""

    def close(self) -> None:  # noqa: B027 - most plugins hold nothing outside Python
        """Frees what the plugin holds outside Python."""
