"""What a chain is, as saved: plugins, their parameters and state, and the JSON presets.

    spec = ChainSpec([PluginSlot(PluginRef(PluginFormat.BUILTIN, "Reverb", "Reverb"), {"room_size": 0.8})])
    spec.save("chain.json")            # atomic: a temporary file renamed into place
    spec = ChainSpec.load("chain.json")   # UserError (one line) on a bad file

The JSON is plain and hand-editable; a plugin's own opaque state (VST3/LV2) is base64:

    {"version": 1, "rate": 16000, "slots": [
      {"format": "builtin", "id": "Reverb", "name": "Reverb", "parameters": {"room_size": 0.8},
       "bypass": false, "mix": 1.0, "state": null}]}
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import enum
import json
import math
import os
from pathlib import Path

from engine.errors import UserError

JSON_VERSION = 1
RATES = (16000, 48000)  # the stream's rate, or 48 kHz through soxr around the chain

ParameterValue = float | bool | str


class PluginFormat(enum.StrEnum):
    BUILTIN = "builtin"  # pedalboard's own effects
    VST3 = "vst3"
    LV2 = "lv2"


class ParameterKind(enum.StrEnum):
    FLOAT = "float"
    BOOL = "bool"
    CHOICE = "choice"


@dataclasses.dataclass(frozen=True)
class PluginRef:
    """Which plugin: a built-in's class name ("Reverb"), a VST3 bundle's path or an LV2 URI."""

    format: PluginFormat
    id: str
    name: str


@dataclasses.dataclass(frozen=True)
class ParameterInfo:
    """One parameter a plugin exposes. `name` is the key in `PluginSlot.parameters`;
    `label` is what a user reads; `unit` e.g. "dB", "ms", "" when none."""

    name: str
    label: str
    unit: str
    kind: ParameterKind
    minimum: float
    maximum: float
    default: ParameterValue
    choices: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class PluginInfo:
    ref: PluginRef
    vendor: str
    parameters: tuple[ParameterInfo, ...]
    latency_samples: int = 0
    has_editor: bool = False

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PluginInfo:
        """The inverse of `to_dict` (JSON's lists back to tuples, strings back to enums)."""
        ref = PluginRef(PluginFormat(data["ref"]["format"]), data["ref"]["id"], data["ref"]["name"])
        parameters = tuple(
            ParameterInfo(**{**p, "kind": ParameterKind(p["kind"]), "choices": tuple(p["choices"])})
            for p in data["parameters"]
        )
        return cls(ref, data["vendor"], parameters, data["latency_samples"], data["has_editor"])

    def parameter(self, name: str) -> ParameterInfo:
        """The parameter called `name`; UserError naming the known ones if there is none."""
        for parameter in self.parameters:
            if parameter.name == name:
                return parameter
        known = ", ".join(p.name for p in self.parameters) or "none"
        raise UserError(f"{self.ref.name} has no parameter {name!r}; its parameters: {known}")


@dataclasses.dataclass
class PluginSlot:
    """One plugin in a chain. `parameters` by `ParameterInfo.name` (missing: default);
    `mix` is dry/wet in [0, 1]; `state` the plugin's own opaque state (VST3/LV2)."""

    ref: PluginRef
    parameters: dict[str, ParameterValue] = dataclasses.field(default_factory=dict)
    bypass: bool = False
    mix: float = 1.0
    state: bytes | None = None

    def to_dict(self) -> dict:
        return {
            "format": str(self.ref.format),
            "id": self.ref.id,
            "name": self.ref.name,
            "parameters": dict(self.parameters),
            "bypass": self.bypass,
            "mix": self.mix,
            "state": None if self.state is None else base64.b64encode(self.state).decode("ascii"),
        }

    @classmethod
    def from_dict(cls, data: dict, where: str) -> PluginSlot:
        """Raises ValueError (with `where`, e.g. "slot 2") on anything malformed."""
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected an object, got {type(data).__name__}")
        unknown = set(data) - {"format", "id", "name", "parameters", "bypass", "mix", "state"}
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        try:
            plugin_format = PluginFormat(data["format"])
        except (KeyError, ValueError):
            known = ", ".join(PluginFormat)
            raise ValueError(f"{where}: format must be one of {known}, got {data.get('format')!r}") from None
        plugin_id = data.get("id")
        if not isinstance(plugin_id, str) or not plugin_id:
            raise ValueError(f"{where}: id must be a non-empty string")
        name = data.get("name", plugin_id)
        parameters = data.get("parameters", {})
        if not isinstance(parameters, dict) or not all(
            isinstance(v, (bool, int, float, str)) for v in parameters.values()
        ):
            raise ValueError(f"{where}: parameters must map names to numbers, booleans or strings")
        bypass, mix = data.get("bypass", False), data.get("mix", 1.0)
        if not isinstance(bypass, bool):
            raise ValueError(f"{where}: bypass must be true or false")
        if isinstance(mix, bool) or not isinstance(mix, (int, float)) or not 0 <= mix <= 1:
            raise ValueError(f"{where}: mix must be a number in [0, 1], got {mix!r}")
        state = data.get("state")
        if state is not None:
            try:
                state = base64.b64decode(state, validate=True)
            except (binascii.Error, TypeError, ValueError):
                raise ValueError(f"{where}: state is not base64") from None
        return cls(PluginRef(plugin_format, plugin_id, str(name)), dict(parameters), bypass, float(mix), state)


@dataclasses.dataclass
class ChainSpec:
    """An effects chain: its slots in order and the rate it processes at (16000, or 48000
    with soxr resampling around it)."""

    slots: list[PluginSlot] = dataclasses.field(default_factory=list)
    rate: int = 16000

    def to_json(self) -> str:
        return json.dumps(
            {"version": JSON_VERSION, "rate": self.rate, "slots": [slot.to_dict() for slot in self.slots]}, indent=2
        )

    @classmethod
    def from_json(cls, text: str) -> ChainSpec:
        """Raises ValueError, one line, on a malformed chain."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"not JSON ({error})") from None
        if not isinstance(data, dict) or not isinstance(data.get("slots"), list):
            raise ValueError('not a chain: expected an object with a "slots" list')
        if data.get("version", JSON_VERSION) != JSON_VERSION:
            raise ValueError(f"chain version {data.get('version')!r}; this program reads version {JSON_VERSION}")
        rate = data.get("rate", 16000)
        if rate not in RATES or isinstance(rate, bool):
            raise ValueError(f"rate must be one of {', '.join(map(str, RATES))}, got {rate!r}")
        slots = [PluginSlot.from_dict(slot, f"slot {i + 1}") for i, slot in enumerate(data["slots"])]
        return cls(slots, int(rate))

    def save(self, path: str | Path) -> None:
        """Writes the JSON atomically (temporary file in the same folder, fsync, rename)."""
        path = Path(path).expanduser()
        partial = path.parent / f".{path.name}.{os.getpid()}.part"
        try:
            with partial.open("w", encoding="utf-8") as file:
                file.write(self.to_json() + "\n")
                file.flush()
                os.fsync(file.fileno())
            os.replace(partial, path)
        except OSError as error:
            partial.unlink(missing_ok=True)
            raise UserError(f"cannot save the chain to {path}: {error.strerror or error}") from None

    @classmethod
    def load(cls, path: str | Path) -> ChainSpec:
        """Reads a chain file; UserError naming the file and the problem on a bad one."""
        path = Path(path).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UserError(f"{path}: not found; check the chain file's path") from None
        except IsADirectoryError:
            raise UserError(f"{path}: is a folder; give a chain .json file") from None
        except UnicodeDecodeError:
            raise UserError(f"{path}: bad chain file: not JSON (not even text); give a chain .json file") from None
        except OSError as error:
            raise UserError(f"{path}: cannot read the chain ({error.strerror or error})") from None
        try:
            return cls.from_json(text)
        except ValueError as error:
            raise UserError(f"{path}: bad chain file: {error}") from None


def check_value(parameter: ParameterInfo, value: ParameterValue) -> ParameterValue:
    """`value` as the type `parameter` takes; ValueError (one line) when out of range or of
    the wrong kind. Numbers are clipped to the range only by the plugin, never here."""
    if parameter.kind is ParameterKind.BOOL:
        if not isinstance(value, bool):
            raise ValueError(f"{parameter.name} is on/off: give true or false, got {value!r}")
        return value
    if parameter.kind is ParameterKind.CHOICE:
        if str(value) not in parameter.choices:
            raise ValueError(f"{parameter.name} must be one of {', '.join(parameter.choices)}, got {value!r}")
        return str(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{parameter.name} takes a number, got {value!r}")
    if not parameter.minimum <= value <= parameter.maximum:
        raise ValueError(
            f"{parameter.name} = {value:g} is outside {parameter.minimum:g}..{parameter.maximum:g}"
            + (f" {parameter.unit}" if parameter.unit else "")
        )
    return float(value)
