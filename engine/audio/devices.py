"""Audio devices through sounddevice (PortAudio): listing, choosing, clear errors."""

from __future__ import annotations

import dataclasses


class AudioUnavailable(Exception):
    """No usable audio device (or no PortAudio); offline rendering still works."""


def sounddevice():
    """The sounddevice module, or AudioUnavailable if PortAudio cannot be loaded."""
    try:  # here, not at the top: importing sounddevice loads PortAudio, and fails (OSError) without it
        import sounddevice as sd  # noqa: PLC0415
    except OSError as error:  # libportaudio missing
        raise AudioUnavailable(
            f"no audio system: PortAudio could not be loaded ({error}); install libportaudio2, "
            "or render to a file with `harmonic generate --out FILE`"
        ) from None
    return sd


@dataclasses.dataclass(frozen=True)
class DeviceInfo:
    """One audio device as PortAudio sees it."""

    index: int
    name: str
    hostapi: str
    max_input_channels: int
    max_output_channels: int
    default_samplerate: float
    is_default_input: bool
    is_default_output: bool


def list_devices() -> list[DeviceInfo]:
    """All devices PortAudio reports (empty if there are none)."""
    sd = sounddevice()
    apis = sd.query_hostapis()
    try:
        default_in, default_out = sd.default.device
    except Exception:
        default_in = default_out = -1
    devices = []
    for info in sd.query_devices():
        devices.append(
            DeviceInfo(
                index=info["index"],
                name=info["name"],
                hostapi=apis[info["hostapi"]]["name"],
                max_input_channels=info["max_input_channels"],
                max_output_channels=info["max_output_channels"],
                default_samplerate=info["default_samplerate"],
                is_default_input=info["index"] == default_in,
                is_default_output=info["index"] == default_out,
            )
        )
    return devices


def resolve(device: int | str | None, kind: str, devices: list[DeviceInfo] | None = None) -> DeviceInfo:
    """The device to use for `kind` ("output" or "input").

    Args:
      device: None (the default device), an index, or a case-insensitive substring of
        a device name (the first match with channels of that kind).
      devices: the devices to choose from (default: `list_devices()`, what PortAudio sees).

    Raises:
      AudioUnavailable: with a message naming what is missing.
    """
    devices = list_devices() if devices is None else devices
    channels = (lambda d: d.max_output_channels) if kind == "output" else (lambda d: d.max_input_channels)
    usable = [d for d in devices if channels(d) > 0]
    if not usable:
        raise AudioUnavailable(
            f"no audio {kind} device found (is a sound card or sound server available?); "
            + (
                "render to a file instead with `harmonic generate --out FILE`"
                if kind == "output"
                else "take the seed audio from a file with --prime FILE"
            )
        )
    if device is None:
        default = [d for d in usable if (d.is_default_output if kind == "output" else d.is_default_input)]
        return default[0] if default else usable[0]
    if isinstance(device, int) or (isinstance(device, str) and device.isdigit()):
        for d in usable:
            if d.index == int(device):
                return d
        raise AudioUnavailable(f"no {kind} device with index {device}; see `harmonic devices`")
    matches = [d for d in usable if str(device).lower() in d.name.lower()]
    if not matches:
        raise AudioUnavailable(f"no {kind} device matching {device!r}; see `harmonic devices`")
    return matches[0]


def supports_rate(device: DeviceInfo, kind: str, rate: float) -> bool:
    """Whether the device opens mono at `rate` Hz."""
    sd = sounddevice()
    check = sd.check_output_settings if kind == "output" else sd.check_input_settings
    try:
        check(device=device.index, channels=1, samplerate=rate, dtype="float32")
        return True
    except Exception:
        return False
