"""Live playback: a worker thread runs the generator and the pipeline's `Stage` (take
tap, mix-down, effects chain, program tap; engine.audio.pipeline) ahead into a FIFO ring
buffer; the sound-card callback only copies out of it (docs/spec.md §8).

    from engine.audio import Player
    player = Player(generator, device=None, latency="high", buffer_seconds=1.0, stage=Stage(chain))
    player.start()            # returns at once; state: compiling -> buffering -> playing
    ...                       # read player.fill_fraction, .underruns, .realtime_factor,
    player.pause(); player.resume()
    player.stop()             # or player.wait() for a source that ends
    audio = player.generated()   # float32 [voices, n]: everything generated, all voices (dry)

For a GUI: read the properties and the program tap (`player.program.read_since(position,
player.heard_samples)`: the processed audio up to what the sound card has played) from
one timer; `Stage(on_chunk=...)` receives every generated chunk (on the worker thread).
No Qt here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

import numpy as np
import soxr

from engine.audio.devices import AudioUnavailable, resolve, sounddevice, supports_rate
from engine.audio.pipeline import Stage
from engine.audio.ring import RingBuffer
from engine.mulaw import SAMPLE_RATE

if TYPE_CHECKING:  # loaded at run time through `sounddevice()`, which reports a missing PortAudio
    import sounddevice as sd

STATES = ("idle", "compiling", "buffering", "playing", "paused", "draining", "finished", "stopped", "error")


class Player:
    """Plays a generator (or any source of chunks) live on an output device.

    Args:
      source: an `engine.generator.Generator` (its `chunks()` are played and `stop()`
        stops it), or any iterable of float32 chunks [voices, n] or [n] at 16 kHz.
      device: output device: None (default), an index, or a name substring
        (`engine.audio.list_devices`).
      latency: PortAudio's suggested latency: "low", "high" or seconds.
      blocksize: frames per callback (0: PortAudio chooses).
      buffer_seconds: how far the worker generates ahead (ring capacity).
      start_seconds: audio buffered before the stream starts (pre-fill).
      keep: keep every generated chunk (all voices) for `generated()`.
      max_seconds: stop the source after this much audio (None: until stopped).
      stage: the pipeline stage each chunk goes through on the worker thread: take tap,
        mix-down, effects chain, program tap (`engine.audio.Stage`; default: a plain
        mean of the voices, no effects).
      on_end: called on the worker thread once, when the source has been played to the
        end or failed (not after `stop()`).

    Raises:
      AudioUnavailable: at `start()`, if there is no output device or it cannot be opened.
    """

    def __init__(
        self,
        source,
        *,
        device: int | str | None = None,
        latency: str | float = "high",
        blocksize: int = 0,
        buffer_seconds: float = 1.0,
        start_seconds: float = 0.5,
        keep: bool = True,
        max_seconds: float | None = None,
        stage: Stage | None = None,
        on_end: Callable[[], None] | None = None,
    ):
        self.source = source
        self.device = device
        self.latency = latency
        self.blocksize = blocksize
        self.buffer_seconds = buffer_seconds
        self.start_seconds = min(start_seconds, buffer_seconds)
        self.keep = keep
        self.max_seconds = max_seconds
        self.on_end = on_end
        self.stage = stage or Stage()

        self._state = "idle"
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._done = threading.Event()
        self._source_done = False
        self._underruns = 0
        self._underrun_frames = 0
        self._kept: list[np.ndarray] = []
        self._generated = 0
        self._gen_seconds = 0.0
        self._gen_samples_timed = 0
        self._thread: threading.Thread | None = None
        self._stream: sd.OutputStream | None = None
        self.device_rate = SAMPLE_RATE
        self._ring = RingBuffer(max(1, int(buffer_seconds * SAMPLE_RATE)))

    # ----- control -----------------------------------------------------------------------

    def start(self) -> None:
        """Opens the output stream (raising AudioUnavailable at once if it cannot) and starts
        the worker; playback begins when `start_seconds` are buffered. Returns at once."""
        if self._state != "idle":
            raise RuntimeError(f"Player.start() called in state {self._state!r}")
        sd = sounddevice()
        info = resolve(self.device, "output")
        self.device_info = info
        # PortAudio does not resample: open at 16 kHz if the device takes it, else at its
        # own rate and resample on the worker thread.
        self.device_rate = SAMPLE_RATE if supports_rate(info, "output", SAMPLE_RATE) else int(info.default_samplerate)
        self._ring = RingBuffer(max(1, int(self.buffer_seconds * self.device_rate)))
        try:
            self._stream = sd.OutputStream(
                samplerate=self.device_rate,
                blocksize=self.blocksize,
                device=info.index,
                channels=1,
                dtype="float32",
                latency=self.latency,
                callback=self._callback,
                finished_callback=None,
            )
        except Exception as error:
            raise AudioUnavailable(f"cannot open output device {info.name!r}: {error}") from None
        self._state = "compiling"
        self._thread = threading.Thread(target=self._work, name="harmonic-player", daemon=True)
        self._thread.start()

    def pause(self) -> None:
        """Stops the sound card; the worker fills the buffer and waits."""
        if self._state == "playing":
            self._opened_stream().stop()
            self._state = "paused"

    def resume(self) -> None:
        if self._state == "paused":
            self._opened_stream().start()
            self._state = "playing"

    def stop(self) -> None:
        """Stops generation and playback now (buffered audio is dropped); idempotent."""
        self._stop.set()
        if hasattr(self.source, "stop"):
            self.source.stop()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._close()
        if self._state not in ("finished", "error"):
            self._state = "stopped"
        self._done.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Blocks until a finite source has been played to the end (or `stop`); returns
        False on timeout. Re-raises an error of the worker thread."""
        finished = self._done.wait(timeout)
        if self._error is not None:
            raise self._error
        return finished

    # ----- readable at any moment --------------------------------------------------------

    @property
    def state(self) -> str:
        """One of "idle", "compiling" (first chunk: compiling or loading the program),
        "buffering", "playing", "paused", "draining" (source ended, buffer playing out),
        "finished", "stopped", "error"."""
        return self._state

    @property
    def error(self) -> BaseException | None:
        """The exception that ended the worker thread, if any."""
        return self._error

    @property
    def fill_seconds(self) -> float:
        """Audio buffered ahead of the sound card, in seconds."""
        return self._ring.available / self.device_rate

    @property
    def fill_fraction(self) -> float:
        """Buffered audio as a fraction of buffer_seconds, 0..1."""
        return self._ring.available / self._ring.capacity

    @property
    def underruns(self) -> int:
        """Callbacks that found the buffer short while the source was still running (each
        wrote silence for the missing frames)."""
        return self._underruns

    @property
    def underrun_seconds(self) -> float:
        return self._underrun_frames / self.device_rate

    @property
    def realtime_factor(self) -> float | None:
        """Seconds of audio generated per second of generation time, after the first chunk
        (which includes compilation); None before that. Above 1 keeps up."""
        if self._gen_seconds <= 0:
            return None
        return self._gen_samples_timed / SAMPLE_RATE / self._gen_seconds

    @property
    def played_seconds(self) -> float:
        """Audio handed to the sound card so far (excluding underrun silence)."""
        return self._ring.total_read / self.device_rate

    @property
    def generated_seconds(self) -> float:
        """Audio generated so far (per voice)."""
        return self._generated / SAMPLE_RATE

    @property
    def program(self) -> RingBuffer:
        """The program tap: the processed mono audio at 16 kHz, written ahead of the sound
        card by up to `buffer_seconds` (read it up to `heard_samples`)."""
        return self.stage.program

    @property
    def heard_samples(self) -> int:
        """Program samples (16 kHz) that the sound card has taken so far."""
        return self._ring.total_read * SAMPLE_RATE // self.device_rate

    def generated(self) -> np.ndarray:
        """Everything generated so far, all voices, float32 [voices, n] at 16 kHz (needs
        keep=True)."""
        chunks = list(self._kept)
        if not chunks:
            return np.zeros((1, 0), np.float32)
        return np.concatenate([c if c.ndim == 2 else c[None] for c in chunks], axis=1)

    # ----- threads -------------------------------------------------------------------------

    def _callback(self, outdata, frames, time_info, status) -> None:
        # Runs on PortAudio's thread: copies only.
        out = outdata[:, 0]
        n = self._ring.read_into(out)
        if n < frames:
            out[n:] = 0.0
            if not self._source_done:
                self._underruns += 1
                self._underrun_frames += frames - n

    def _chunks(self) -> Iterator[np.ndarray]:
        source = self.source
        max_samples = None if self.max_seconds is None else int(round(self.max_seconds * SAMPLE_RATE))
        if hasattr(source, "chunks"):
            yield from source.chunks(max_samples)
            return
        done = 0
        for chunk in source if isinstance(source, Iterable) else iter(source):
            chunk = np.asarray(chunk, np.float32)
            if max_samples is not None:
                chunk = chunk[..., : max_samples - done]
            done += chunk.shape[-1]
            yield chunk
            if max_samples is not None and done >= max_samples:
                return

    def _work(self) -> None:
        try:
            resampler = None
            if self.device_rate != SAMPLE_RATE:
                resampler = soxr.ResampleStream(SAMPLE_RATE, self.device_rate, 1, dtype="float32")
            start_frames = int(self.start_seconds * self.device_rate)
            chunks = self._chunks()
            first = True
            while not self._stop.is_set():
                began = time.perf_counter()
                chunk = next(chunks, None)
                elapsed = time.perf_counter() - began
                if chunk is None:
                    break
                if first:
                    first = False
                    self._state = "buffering"
                else:
                    self._gen_seconds += elapsed
                    self._gen_samples_timed += chunk.shape[-1]
                self._generated += chunk.shape[-1]
                if self.keep:
                    self._kept.append(chunk)
                mono = self.stage.process(chunk)
                if resampler is not None:
                    mono = resampler.resample_chunk(mono)
                self._push(mono)
                if self._state == "buffering" and self._ring.available >= start_frames:
                    self._begin()
            if resampler is not None and not self._stop.is_set():
                self._push(resampler.resample_chunk(np.zeros(0, np.float32), last=True))
            self._source_done = True
            if self._stop.is_set():
                return
            if self._state == "buffering":
                self._begin()
            self._state = "draining" if self._state == "playing" else self._state
            while self._ring.available > 0 and not self._stop.is_set():
                time.sleep(0.01)
            # Let the device play what it holds (its latency) before closing.
            latency = getattr(self._stream, "latency", 0.1) or 0.1
            self._stop.wait(latency + 0.05)
            if not self._stop.is_set():
                self._close()
                self._state = "finished"
        except BaseException as error:  # surfaced by wait() and .error
            self._error = error
            self._state = "error"
            self._close()
        finally:
            self._source_done = True
            if self._state in ("finished", "error"):
                self._done.set()
                if self.on_end is not None:
                    self.on_end()

    def _push(self, mono: np.ndarray) -> None:
        """Writes all of `mono` into the ring, waiting for room (while paused, too)."""
        written = 0
        while written < len(mono) and not self._stop.is_set():
            written += self._ring.write(mono[written:])
            if written < len(mono):
                if self._state == "buffering":
                    self._begin()  # buffer smaller than start_seconds: start anyway
                time.sleep(0.005)

    def _begin(self) -> None:
        if self._state == "buffering":
            self._opened_stream().start()
            self._state = "playing"

    def _opened_stream(self) -> sd.OutputStream:
        """The output stream, which `start` opens before any state that plays or pauses."""
        if self._stream is None:
            raise RuntimeError(f"Player has no output stream in state {self._state!r}")
        return self._stream

    def _close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.abort() if self._stop.is_set() else stream.stop()
                stream.close()
            except Exception:
                pass
        self._stream = stream  # keep for latency queries; closed

    def __enter__(self) -> Player:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
