"""Recording seed audio from an input device, resampled to 16 kHz.

from engine.audio import Recorder, record
clip = record(3.0)                    # float32 [48000] at 16 kHz, blocks until done
rec = Recorder(device="USB"); rec.start(); ...; rec.level_db; clip = rec.stop()
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import soxr

from engine.audio.devices import AudioUnavailable, resolve, sounddevice, supports_rate
from engine.mulaw import SAMPLE_RATE

if TYPE_CHECKING:  # loaded at run time through `sounddevice()`, which reports a missing PortAudio
    import sounddevice as sd


class Recorder:
    """Records mono audio from an input device.

    Args:
      device: None (default input), an index or a name substring.
      sample_rate: the rate to open the device at; None: 16 kHz if the device offers it,
        else its default rate. Whatever it is, `stop()` returns 16 kHz audio.
      max_seconds: recording stops by itself after this long (None: until `stop()`).
      channels: channels to open; they are averaged to mono.
      on_block: called from the audio thread with each mono block, float32 [n] at the
        device's rate (e.g. to feed a live waveform); it must only copy.
    """

    def __init__(
        self,
        device: int | str | None = None,
        sample_rate: int | None = None,
        max_seconds: float | None = None,
        channels: int = 1,
        on_block: Callable[[np.ndarray], None] | None = None,
    ):
        self.device = device
        self.on_block = on_block
        self.sample_rate = sample_rate
        self.max_seconds = max_seconds
        self.channels = channels
        self._blocks: list[np.ndarray] = []
        self._frames = 0
        self._peak = 0.0
        self._rms = 0.0
        self._stream: sd.InputStream | None = None
        self._full = threading.Event()
        self._state = "idle"

    def start(self) -> None:
        """Opens the device and starts recording (AudioUnavailable if it cannot)."""
        sd = sounddevice()
        info = resolve(self.device, "input")
        self.device_info = info
        if self.sample_rate is None:
            self.sample_rate = (
                SAMPLE_RATE if supports_rate(info, "input", SAMPLE_RATE) else int(info.default_samplerate)
            )
        self._limit = None if self.max_seconds is None else int(round(self.max_seconds * self.sample_rate))
        try:
            self._stream = stream = sd.InputStream(
                samplerate=self.sample_rate,
                device=info.index,
                channels=self.channels,
                dtype="float32",
                callback=self._callback,
            )
            stream.start()
        except Exception as error:
            raise AudioUnavailable(
                f"cannot open input device {info.name!r} at {self.sample_rate} Hz: {error}"
            ) from None
        self._state = "recording"

    def _callback(self, indata, frames, time_info, status) -> None:
        block = indata.mean(axis=1) if indata.shape[1] > 1 else indata[:, 0].copy()
        if len(block):
            self._peak = float(np.max(np.abs(block)))
            self._rms = float(np.sqrt(np.mean(block * block)))
        if self._limit is not None:
            block = block[: max(0, self._limit - self._frames)]
            if self._frames + len(block) >= self._limit:
                self._full.set()
        if len(block):
            self._blocks.append(block)
            self._frames += len(block)
            if self.on_block is not None:
                self.on_block(block)

    @property
    def state(self) -> str:
        """ "idle", "recording" or "stopped"."""
        return self._state

    @property
    def seconds(self) -> float:
        """Recorded so far."""
        return self._frames / (self.sample_rate or SAMPLE_RATE)

    @property
    def level(self) -> float:
        """Peak magnitude of the latest block, 0..1."""
        return self._peak

    @property
    def level_db(self) -> float:
        """RMS level of the latest block in dBFS (-120 for silence)."""
        return 20 * np.log10(max(self._rms, 1e-6))

    def recorded_so_far(self) -> np.ndarray:
        """The recording up to now, float32 [n] at the device's rate (`sample_rate`)."""
        blocks = list(self._blocks)
        return np.concatenate(blocks) if blocks else np.zeros(0, np.float32)

    def wait(self, timeout: float | None = None) -> bool:
        """Blocks until max_seconds are recorded; False on timeout."""
        return self._full.wait(timeout)

    def stop(self) -> np.ndarray:
        """Stops and returns the recording, float32 [n] at 16 kHz."""
        if self._stream is not None:
            self._stream.stop()
            self._stream.close()
            self._stream = None
        self._state = "stopped"
        audio = self.recorded_so_far()
        if self.sample_rate != SAMPLE_RATE and len(audio):
            audio = soxr.resample(audio, self.sample_rate, SAMPLE_RATE).astype(np.float32)
        return audio.astype(np.float32)


def record(seconds: float, device: int | str | None = None, sample_rate: int | None = None) -> np.ndarray:
    """Records `seconds` from an input device; float32 [seconds * 16000] at 16 kHz."""
    recorder = Recorder(device, sample_rate, max_seconds=seconds)
    recorder.start()
    try:
        if not recorder.wait(seconds + 10):
            raise AudioUnavailable("the input device delivered no audio (is it muted or disconnected?)")
    finally:
        audio = recorder.stop()
    return audio[: int(round(seconds * SAMPLE_RATE))]
