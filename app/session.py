"""Generation, clip playback and microphone recording, off the GUI thread.

`GenerationSession` runs one take in a worker thread: it builds the generator (compiling
its programs), primes it with the seed, opens the sound card, and writes every chunk to
the library as it is made. Its state and errors come back as Qt signals; the views read
`ViewBuffer`s that the worker and audio threads fill. No thread here touches a widget.
"""

from __future__ import annotations

import threading
import time

import numpy as np
from PyQt6.QtCore import QObject, pyqtSignal

from app import workers
from app.view_buffer import ViewBuffer
from engine.mulaw import SAMPLE_RATE as RATE


def start_player(player, report) -> bool:
    """Starts an `engine.audio.Player`; if the sound card cannot be opened, calls
    report(reason) and returns False."""
    from engine.audio import AudioUnavailable

    try:
        player.start()
    except AudioUnavailable as error:
        report(str(error))
        return False
    except Exception as error:  # noqa: BLE001 - PortAudio raises several types
        report(f"the audio output failed to open ({error})")
        return False
    return True

class GenerationSession(QObject):
    """One take. States: compiling -> buffering -> playing (or rendering, without an
    audio device) -> stopping -> idle; or error."""

    stateChanged = pyqtSignal(str)
    error = pyqtSignal(str)
    notice = pyqtSignal(str)
    takeSaved = pyqtSignal(object)  # engine.library.Take or None

    def __init__(self, checkpoint, values: dict, seed, library, buffer: ViewBuffer, parent=None):
        super().__init__(parent)
        self.checkpoint = checkpoint
        self.values = dict(values)
        self.seed = seed  # (audio float32 [n] at 16 kHz, source) or None
        self.library = library
        self.buffer = buffer
        self.generator = None
        self.output = None
        self.task = None
        self.samples = 0  # per voice, seed included: played (or rendered) so far
        self.generated = 0  # per voice, seed included: generated so far
        self.writer = None
        self._write_error = None
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
            "fill": output.fill_fraction if output is not None else None,
            "rtf": (output.realtime_factor if output is not None else None) or (generator.realtime_factor if generator is not None else None),
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
        seconds = v.get("seconds")
        total = None if seconds is None else self.prime_samples + int(round(seconds * RATE))
        meta = {
            "checkpoint": self.checkpoint.name, "checkpoint_path": str(self.checkpoint.path or ""),
            "temperature": settings.temperature, "top_p": settings.top_p, "seed": settings.seed,
            "voices": settings.voices, "seed_audio": source, "seed_frames": self.prime_samples,
        }
        device_error = self._check_output()
        # compile (or load from the compile cache) before the sound card starts: with a
        # seed the player would otherwise play the seed and then starve while compiling
        generator.warmup()
        if self._stop.is_set():
            return None
        writer = self.writer = self.library.begin_take(meta)  # before the player calls on_chunk
        player = None
        if device_error is None:
            player = self._open_player(generator, total)
        else:
            self.notice.emit(device_error)
        if player is not None:
            error = self._play(player, writer)
        else:
            error = self._render(generator, writer, total)
        if writer.closed:  # the library gave up on the take (e.g. the disk is full)
            raise error
        take = writer.finish()
        if error is not None:
            raise RuntimeError(f"Generation stopped: {error}" + (f" (the first {take.duration:.1f} s were saved)" if take else ""))
        return take

    def _check_output(self) -> str | None:
        """None if the output device is there, else a message (checked before compiling)."""
        from engine.audio import AudioUnavailable, resolve

        try:
            resolve(self.values.get("output_device"), "output")
        except AudioUnavailable as error:
            reason = str(error).split("; render")[0]  # drop the command-line hint
            return f"No sound: {reason}. The take is generated into the library without playing."
        except Exception as error:  # noqa: BLE001 - PortAudio raises several types
            return f"No sound: the audio system failed ({error}). The take is generated into the library without playing."
        return None

    def _open_player(self, generator, total):
        """The engine's Player on the chosen output device, started; None (and a notice)
        when there is no usable device: the take is then rendered without sound."""
        from engine.audio import Player

        player = Player(
            generator, device=self.values.get("output_device"), latency=self.values.get("latency") or "high",
            keep=False, on_chunk=self._on_chunk, max_seconds=None if total is None else total / RATE,
            buffer_seconds=1.5, start_seconds=1.0,
        )
        if not start_player(player, lambda why: self.notice.emit(
                f"No sound: {why}. The take is generated into the library without playing.")):
            return None
        self.output = player
        return player

    def _on_chunk(self, chunk) -> None:
        """Player worker thread: every generated chunk goes to the library as it is made."""
        if self._write_error is None:
            try:
                self.writer.write(chunk)
            except Exception as error:  # noqa: BLE001 - stop the take, report it
                self._write_error = error
                self._stop.set()
                if self.generator is not None:
                    self.generator.stop()
                return
        self.generated += chunk.shape[-1]

    def _play(self, player, writer):
        """Follows the player until the take ends or Stop; feeds the views from its tap."""
        tap = Tap(player, self.buffer, self.prime_samples)
        last = None
        while not self._stop.is_set():
            state = player.state
            if state != last:
                shown = {"draining": "playing", "paused": "playing"}.get(state, state)
                if shown in ("compiling", "buffering", "playing"):
                    self.stateChanged.emit(shown)
                last = state
            tap.pump()
            self.samples = tap.position
            if state in ("finished", "stopped", "error"):
                break
            self._stop.wait(0.02)
        player.stop()
        tap.pump()
        self.samples = tap.position
        if self._write_error is not None:
            return self._write_error
        return player.error

    def _render(self, generator, writer, total):
        """Without a sound card: generate at real time into the library and the views."""
        started = time.perf_counter()
        self.stateChanged.emit("rendering")
        try:
            for chunk in generator.chunks(total):
                if self._stop.is_set():
                    break
                in_seed = self.samples < self.prime_samples
                writer.write(chunk)
                self.buffer.write(chunk, seed=in_seed)
                self.samples += chunk.shape[1]
                self.generated = self.samples
                ahead = self.samples / RATE - (time.perf_counter() - started)
                if ahead > 0.25 and not in_seed:
                    self._stop.wait(ahead - 0.2)
        except Exception as failure:  # noqa: BLE001 - keep what was made, then report
            return failure
        return None


class Tap:
    """Copies what a Player sent to the sound card into a view ViewBuffer at 16 kHz
    (resampling when the device runs at another rate); seed samples are flagged."""

    def __init__(self, player, buffer: ViewBuffer, seed_frames: int = 0):
        self.player = player
        self.buffer = buffer
        self.seed_frames = seed_frames
        self.position = 0  # samples (16 kHz) written to the buffer
        self._seen = 0  # samples of the player's history consumed (device rate)
        self._resampler = None

    def pump(self) -> None:
        player = self.player
        total = player.sent_samples
        new = total - self._seen
        if new <= 0:
            return
        audio = player.recent(new)
        self._seen = total
        rate = getattr(player, "device_rate", RATE)
        if rate != RATE:
            if self._resampler is None:
                import soxr

                self._resampler = soxr.ResampleStream(rate, RATE, 1, dtype="float32")
            audio = self._resampler.resample_chunk(audio)
        if audio.size == 0:
            return
        split = max(0, min(audio.size, self.seed_frames - self.position))
        if split:
            self.buffer.write(audio[:split], seed=True)
        if split < audio.size:
            self.buffer.write(audio[split:], seed=False)
        self.position += audio.size


class Playback(QObject):
    """Plays a clip (a take or the seed) with the engine's Player, copying what plays
    into a ViewBuffer for the views (from a GUI timer). Errors come through `error`."""

    error = pyqtSignal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.player = None
        self.tap = None
        from PyQt6.QtCore import QTimer

        self.timer = QTimer(self)
        self.timer.timeout.connect(self._pump)

    def play(self, audio: np.ndarray, buffer: ViewBuffer, device=None, latency="high", seed_frames: int = 0) -> bool:
        """audio: float32 [voices, n] or [n] at 16 kHz; voices are mixed."""
        from engine.audio import Player

        self.stop()
        audio = np.asarray(audio, np.float32)
        pieces = [audio[..., i:i + 1600] for i in range(0, audio.shape[-1], 1600)]
        player = Player(pieces, device=device or None, latency=latency, keep=False, start_seconds=0.1)
        if not start_player(player, lambda why: self.error.emit(f"Cannot play: {why}")):
            return False
        self.player = player
        self.tap = Tap(player, buffer, seed_frames)
        self.timer.start(20)
        return True

    def _pump(self) -> None:
        if self.tap is not None:
            self.tap.pump()
        if self.player is not None and self.player.state in ("finished", "stopped", "error"):
            if self.player.error is not None:
                self.error.emit(f"Playback failed: {self.player.error}")
            self.timer.stop()

    @property
    def playing(self) -> bool:
        return self.player is not None and self.player.state in ("compiling", "buffering", "playing", "draining")

    @property
    def played(self) -> int:
        """Frames (at 16 kHz) that reached the sound card."""
        return 0 if self.tap is None else self.tap.position

    def stop(self) -> None:
        self.timer.stop()
        if self.player is not None:
            self.player.stop()


def Recorder(buffer: ViewBuffer, device=None):
    """A microphone recorder (`engine.audio.Recorder`) whose audio thread also copies each
    block into `buffer` for the live waveform: start(), recorded_so_far(), stop() ->
    float32 [n] at 16 kHz."""
    from engine.audio import Recorder as EngineRecorder

    return EngineRecorder(device=device, on_block=buffer.write)
