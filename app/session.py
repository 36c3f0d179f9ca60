"""Generation, clip playback and microphone recording, off the GUI thread.

`GenerationSession` runs one take in a worker thread: it builds the generator (compiling
its programs), primes it with the seed, opens the sound card, and writes every chunk to
the library as it is made. Its state and errors come back as Qt signals; the views read
`RingBuffer`s that the worker and audio threads fill. No thread here touches a widget.
"""

from __future__ import annotations

import threading
import time

import numpy as np
from PyQt6.QtCore import QObject, pyqtSignal

from app import workers
from app.ringbuffer import RingBuffer

RATE = 16000


class GenerationSession(QObject):
    """One take. States: compiling -> buffering -> playing (or rendering, without an
    audio device) -> stopping -> idle; or error."""

    stateChanged = pyqtSignal(str)
    error = pyqtSignal(str)
    takeSaved = pyqtSignal(object)  # engine.library.Take or None

    def __init__(self, checkpoint, values: dict, seed, library, buffer: RingBuffer, parent=None):
        super().__init__(parent)
        self.checkpoint = checkpoint
        self.values = dict(values)
        self.seed = seed  # (audio float32 [n] at 16 kHz, source) or None
        self.library = library
        self.buffer = buffer
        self.generator = None
        self.output = None
        self.task = None
        self.samples = 0  # per voice, seed included
        self.prime_samples = 0
        self._stop = threading.Event()
        self._done = threading.Event()
        self.active = False

    # ---- control (GUI thread) ------------------------------------------------------

    def start(self) -> None:
        self.active = True
        self.stateChanged.emit("compiling")
        self.task = workers.run_task(self._run, done=self._finished, failed=self._failed, name="generate")

    def stop(self) -> None:
        if not self.active:
            return
        self._stop.set()
        self.stateChanged.emit("stopping")
        if self.generator is not None:
            self.generator.stop()

    def update(self, **changes) -> None:
        if self.generator is not None:
            try:
                self.generator.update(**changes)
            except ValueError as error:
                self.error.emit(str(error))

    def wait(self, seconds: float) -> bool:
        return self._done.wait(seconds) if self.task is not None else True

    def stats(self) -> dict:
        output = self.output
        generator = self.generator
        return {
            "seconds": self.samples / RATE,
            "fill": getattr(output, "fill", None) if output is not None else None,
            "rtf": generator.realtime_factor if generator is not None else None,
            "underruns": getattr(output, "underruns", 0) if output is not None else 0,
        }

    def _finished(self, take) -> None:
        self.active = False
        self.stateChanged.emit("idle")
        self.takeSaved.emit(take)

    def _failed(self, text: str) -> None:
        self.active = False
        self.stateChanged.emit("error")
        self.error.emit(text)
        self.takeSaved.emit(None)

    # ---- the worker ----------------------------------------------------------------

    def _run(self, task):
        try:
            return self._generate()
        finally:
            self._done.set()

    def _generate(self):
        from engine.generator import GenerationSettings, Generator

        v = self.values
        settings = GenerationSettings(
            temperature=float(v["temperature"]), top_p=float(v["top_p"]), seed=int(v["seed"]), voices=int(v["voices"]),
            include_prime=self.seed is not None,
        )
        generator = Generator(self.checkpoint, settings)
        source = ""
        if self.seed is not None:
            audio, source = self.seed
            generator.prime(np.asarray(audio, np.float32), RATE)
        self.prime_samples = generator.prime_samples
        self.generator = generator
        if self._stop.is_set():
            return None
        generator.warmup()
        if self._stop.is_set():
            return None
        seconds = v.get("seconds")
        total = None if seconds is None else self.prime_samples + int(round(seconds * RATE))
        meta = {
            "checkpoint": self.checkpoint.name, "checkpoint_path": str(self.checkpoint.path or ""),
            "temperature": settings.temperature, "top_p": settings.top_p, "seed": settings.seed,
            "voices": settings.voices, "seed_audio": source, "seed_frames": self.prime_samples,
        }
        writer = self.library.begin_take(meta)
        started = time.perf_counter()
        self.stateChanged.emit("rendering")
        error = None
        try:
            for chunk in generator.chunks(total):
                if self._stop.is_set():
                    break
                in_seed = self.samples < self.prime_samples
                writer.write(chunk)
                self.buffer.write(chunk, seed=in_seed)
                self.samples += chunk.shape[1]
                # without a sound card, pace the take at real time so it behaves alike
                ahead = self.samples / RATE - (time.perf_counter() - started)
                if ahead > 0.25 and not in_seed:
                    self._stop.wait(ahead - 0.2)
        except Exception as failure:  # noqa: BLE001 - keep what was made, then report
            error = failure
        if writer.closed:  # the library gave up on the take (e.g. the disk is full)
            raise error
        take = writer.finish()
        if error is not None:
            raise RuntimeError(f"Generation stopped: {error}" + (f" (the first {take.duration:.1f} s were saved)" if take else ""))
        return take


class Playback(QObject):
    """Plays a clip (a take or the seed) on the sound card, copying what plays into a
    RingBuffer for the views. Errors are reported through `error`."""

    error = pyqtSignal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.stream = None
        self.position = 0
        self.audio = None
        self.played = 0  # frames handed to the sound card (tests read it)

    def play(self, audio: np.ndarray, buffer: RingBuffer, device=None, seed_frames: int = 0) -> bool:
        """audio: float32 [voices, n] or [n] at 16 kHz; voices are mixed."""
        self.stop()
        audio = np.asarray(audio, np.float32)
        mono = audio.mean(axis=0) if audio.ndim == 2 else audio
        self.audio, self.position, self.played = mono, 0, 0
        self.buffer, self.seed_frames = buffer, seed_frames
        try:
            import sounddevice as sd

            self.stream = sd.OutputStream(samplerate=RATE, channels=1, dtype="float32", device=device or None,
                                          callback=self._callback, finished_callback=None)
            self.stream.start()
        except Exception as error:  # noqa: BLE001 - PortAudio raises several types
            self.stream = None
            self.error.emit(f"No audio output device could be opened: {error}")
            return False
        return True

    def _callback(self, out, frames, time_info, status):  # audio thread: copies only
        audio, start = self.audio, self.position
        piece = audio[start:start + frames]
        out[:piece.size, 0] = piece
        out[piece.size:, 0] = 0
        self.buffer.write(piece, seed=start < self.seed_frames)
        self.position += piece.size
        self.played += piece.size
        if piece.size < frames:
            import sounddevice as sd

            raise sd.CallbackStop

    @property
    def playing(self) -> bool:
        return self.stream is not None and self.stream.active

    def stop(self) -> None:
        if self.stream is not None:
            try:
                self.stream.stop()
                self.stream.close()
            except Exception:  # noqa: BLE001
                pass
            self.stream = None


class Recorder:
    """Records the microphone at 16 kHz mono into memory and a RingBuffer."""

    def __init__(self, buffer: RingBuffer, device=None):
        self.buffer = buffer
        self.device = device
        self.blocks: list[np.ndarray] = []
        self.stream = None
        self._lock = threading.Lock()

    def start(self) -> None:
        import sounddevice as sd

        self.stream = sd.InputStream(samplerate=RATE, channels=1, dtype="float32", device=self.device or None,
                                     callback=self._callback)
        self.stream.start()

    def _callback(self, data, frames, time_info, status):  # audio thread: copies only
        block = data[:, 0].copy()
        with self._lock:
            self.blocks.append(block)
        self.buffer.write(block)

    def audio(self) -> np.ndarray:
        with self._lock:
            blocks = list(self.blocks)
        return np.concatenate(blocks) if blocks else np.zeros(0, np.float32)

    def stop(self) -> np.ndarray:
        if self.stream is not None:
            try:
                self.stream.stop()
                self.stream.close()
            except Exception:  # noqa: BLE001
                pass
            self.stream = None
        return self.audio()
