"""Audio input and output on sounddevice (PortAudio). Importing this package does not
load PortAudio; the first device call does (raising AudioUnavailable if it cannot)."""

from engine.audio.devices import AudioUnavailable, DeviceInfo, list_devices, resolve
from engine.audio.pipeline import Stage, mix_down
from engine.audio.player import Player
from engine.audio.recorder import Recorder, record
from engine.audio.ring import RingBuffer

__all__ = [
    "AudioUnavailable",
    "DeviceInfo",
    "Player",
    "Recorder",
    "RingBuffer",
    "Stage",
    "list_devices",
    "mix_down",
    "record",
    "resolve",
]
