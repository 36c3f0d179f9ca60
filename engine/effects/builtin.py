"""pedalboard's built-in effects, with the ranges and units pedalboard does not publish.

Defaults are read from a fresh instance of each effect, so they follow pedalboard.
"""

from __future__ import annotations

import dataclasses
import enum
import functools

import pedalboard

from engine.effects.pedalboard_host import PedalboardInstance
from engine.effects.spec import ParameterInfo, ParameterKind, PluginFormat, PluginInfo, PluginRef

VENDOR = "pedalboard"


@dataclasses.dataclass(frozen=True)
class _Range:
    """A float parameter of a built-in: attribute name, label, unit, range."""

    name: str
    label: str
    unit: str
    minimum: float
    maximum: float


_FREQUENCY = ("Cutoff", "Hz", 20.0, 7900.0)  # up to just under 16 kHz's Nyquist
_FILTER = (_Range("cutoff_frequency_hz", *_FREQUENCY),)
_SHELF = (*_FILTER, _Range("gain_db", "Gain", "dB", -24.0, 24.0), _Range("q", "Q", "", 0.1, 10.0))
_DYNAMICS = (
    _Range("threshold_db", "Threshold", "dB", -60.0, 0.0),
    _Range("ratio", "Ratio", ":1", 1.0, 20.0),
    _Range("attack_ms", "Attack", "ms", 0.1, 100.0),
    _Range("release_ms", "Release", "ms", 1.0, 1000.0),
)
_MODULATION = (
    _Range("rate_hz", "Rate", "Hz", 0.01, 20.0),
    _Range("depth", "Depth", "", 0.0, 1.0),
    _Range("feedback", "Feedback", "", 0.0, 0.95),
    _Range("mix", "Mix", "", 0.0, 1.0),
)

# Effects that change a sample's level, tone or space, by pedalboard class name. Left out:
# PitchShift (its latency is not reported), codecs and resamplers (not effects to play through).
BUILTIN_RANGES: dict[str, tuple[_Range, ...]] = {
    "Reverb": (
        _Range("room_size", "Room size", "", 0.0, 1.0),
        _Range("damping", "Damping", "", 0.0, 1.0),
        _Range("wet_level", "Wet", "", 0.0, 1.0),
        _Range("dry_level", "Dry", "", 0.0, 1.0),
        _Range("width", "Width", "", 0.0, 1.0),
        _Range("freeze_mode", "Freeze", "", 0.0, 1.0),
    ),
    "Delay": (
        _Range("delay_seconds", "Time", "s", 0.0, 2.0),
        _Range("feedback", "Feedback", "", 0.0, 0.95),
        _Range("mix", "Mix", "", 0.0, 1.0),
    ),
    "Chorus": (*_MODULATION, _Range("centre_delay_ms", "Centre delay", "ms", 1.0, 50.0)),
    "Phaser": (*_MODULATION, _Range("centre_frequency_hz", "Centre", "Hz", 50.0, 7900.0)),
    "Compressor": _DYNAMICS,
    "NoiseGate": _DYNAMICS[:1] + (_Range("ratio", "Ratio", ":1", 1.0, 100.0),) + _DYNAMICS[2:],
    "Limiter": (
        _Range("threshold_db", "Threshold", "dB", -60.0, 0.0),
        _Range("release_ms", "Release", "ms", 1.0, 1000.0),
    ),
    "Gain": (_Range("gain_db", "Gain", "dB", -60.0, 24.0),),
    "Distortion": (_Range("drive_db", "Drive", "dB", 0.0, 60.0),),
    "Clipping": (_Range("threshold_db", "Threshold", "dB", -60.0, 0.0),),
    "Bitcrush": (_Range("bit_depth", "Bit depth", "bits", 1.0, 32.0),),
    "HighpassFilter": _FILTER,
    "LowpassFilter": _FILTER,
    "HighShelfFilter": _SHELF,
    "LowShelfFilter": _SHELF,
    "PeakFilter": _SHELF,
    "LadderFilter": (
        _Range("cutoff_hz", *_FREQUENCY),
        _Range("resonance", "Resonance", "", 0.0, 1.0),
        _Range("drive", "Drive", "", 1.0, 10.0),
    ),
    "Invert": (),
}
# Choice parameters: attribute name -> the enum whose member names are the choices.
BUILTIN_CHOICES: dict[str, dict[str, type[enum.Enum]]] = {"LadderFilter": {"mode": pedalboard.LadderFilter.Mode}}


@functools.cache
def builtin_plugins() -> list[PluginInfo]:
    """Every built-in effect with its parameters, in a stable order."""
    return [_info(name) for name in BUILTIN_RANGES]


def builtin_info(class_name: str) -> PluginInfo | None:
    return next((info for info in builtin_plugins() if info.ref.id == class_name), None)


def open_builtin(info: PluginInfo, rate: int, max_block: int) -> PedalboardInstance:
    plugin = getattr(pedalboard, info.ref.id)()
    return PedalboardInstance(plugin, info, rate, max_block, BUILTIN_CHOICES.get(info.ref.id))


def _info(class_name: str) -> PluginInfo:
    fresh = getattr(pedalboard, class_name)()
    parameters = [
        ParameterInfo(
            r.name, r.label, r.unit, ParameterKind.FLOAT, r.minimum, r.maximum, round(float(getattr(fresh, r.name)), 6)
        )
        for r in BUILTIN_RANGES[class_name]
    ]
    for name, choice_type in BUILTIN_CHOICES.get(class_name, {}).items():
        choices = tuple(choice_type.__members__)  # a pybind11 enum: not iterable
        parameters.append(
            ParameterInfo(
                name,
                name.replace("_", " ").capitalize(),
                "",
                ParameterKind.CHOICE,
                0.0,
                len(choices) - 1.0,
                getattr(fresh, name).name,
                choices,
            )
        )
    return PluginInfo(PluginRef(PluginFormat.BUILTIN, class_name, _display_name(class_name)), VENDOR, tuple(parameters))


def _display_name(class_name: str) -> str:
    """ "HighpassFilter" -> "Highpass filter"."""
    words = "".join(f" {c.lower()}" if c.isupper() else c for c in class_name).split()
    return " ".join(words).capitalize()
