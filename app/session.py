"""Generation and clip playback, off the GUI thread.

`GenerationSession` runs one take in a worker thread: it builds the generator (compiling
its programs), primes it with the seed audio, opens the sound card, and runs the pipeline
(engine.audio.pipeline: generator -> effects chain -> player -> sound card, the take tap
writing every dry chunk to the library). Its state and errors come back as Qt signals.
Both classes here are *sources* for the window's one display timer: `program` (the
processed audio tap), `heard_samples` (how far the sound card has played it) and
`seed_frames`. No thread here touches a widget.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import TYPE_CHECKING

import numpy as np
from PyQt6.QtCore import QObject, pyqtSignal

from app import workers
from app.library import TakeWriter
from app.states import TransportState
from engine.audio import AudioUnavailable, Player, RingBuffer, Stage, resolve
from engine.generation_settings import GenerationSettings
from engine.mulaw import SAMPLE_RATE as RATE

if TYPE_CHECKING:
    from app.panels.seed_audio import SeedAudio
    from engine.generator import Generator


@dataclasses.dataclass(frozen=True)
class AudioDevices:
    """The sound devices chosen in the controls panel.

    Attributes:
      output: the output device's name (a `sounddevice` id), None for the system default.
      input: the microphone's name, None for the system default.
      latency: PortAudio's suggested output latency: "low", "high" or seconds.
    """

    output: str | None = None
    input: str | None = None
    latency: str | float = "high"


def start_player(player, report) -> bool:
    """Starts an `engine.audio.Player`; if the sound card cannot be opened, calls
    report(reason) and returns False."""
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
    audio device) -> stopping -> idle; or error. `stateChanged` carries the worker's
    transitions; the player's own (buffering, playing) are read by the display timer
    through `player_state`.

    Args:
      checkpoint: the loaded `engine.checkpoint.ModelCheckpoint`.
      settings: the sampling (`include_prime` is set here: the take starts with its seed
        audio when there is one).
      seed_audio: what the take continues, or None to start from silence.
      library: the `app.library.Library` the take is written to.
      seconds: the generated length (seed audio not counted); None: until Stop.
      devices: the sound card to play on.
      effects: the effects chain for the live stream (`engine.effects.EffectsChain`) or
        None; `set_effects` swaps it while playing. Its snapshot is stored with the take.
    """

    stateChanged = pyqtSignal(object)  # TransportState (an object signal keeps the enum)
    error = pyqtSignal(str)
    notice = pyqtSignal(str)
    takeSaved = pyqtSignal(object)  # app.library.Take or None

    def __init__(
        self,
        checkpoint,
        settings: GenerationSettings,
        seed_audio: SeedAudio | None,
        library,
        seconds: float | None = None,
        devices: AudioDevices = AudioDevices(),
        effects=None,
        parent=None,
    ):
        super().__init__(parent)
        self.checkpoint = checkpoint
        self.settings = dataclasses.replace(settings, include_prime=seed_audio is not None)
        self.seed_audio = seed_audio
        self.seconds = seconds
        self.devices = devices
        self.library = library
        self.stage = Stage(effects, on_chunk=self._on_chunk)
        self.generator: Generator | None = None
        self.output = None  # the engine.audio.Player while it plays
        self.task: workers.Task | None = None
        self.rendered = 0  # per voice, seed audio included: rendered without a sound card so far
        self.generated = 0  # per voice, seed audio included: generated so far
        self.writer: TakeWriter | None = None  # set before the stage's take tap runs
        self._write_error: Exception | None = None
        self.prime_samples = 0
        self._stop = threading.Event()
        self._ended = threading.Event()  # Stop, or the player reached the end
        self._done = threading.Event()
        self.active = False

    # ---- the display timer's source -------------------------------------------------

    @property
    def program(self) -> RingBuffer:
        return self.stage.program

    @property
    def heard_samples(self) -> int:
        """Program samples played by the sound card (or rendered, without one)."""
        output = self.output
        return output.heard_samples if output is not None else self.rendered

    @property
    def seed_frames(self) -> int:
        """Leading program samples that are seed audio (delayed by the effects chain)."""
        return self.prime_samples + self.stage.latency_samples if self.prime_samples else 0

    @property
    def player_state(self) -> TransportState | None:
        """The state to show while the player runs (buffering, playing), else None."""
        output = self.output
        if output is None or self._stop.is_set():
            return None
        shown = {"draining": "playing", "paused": "playing"}.get(output.state, output.state)  # engine Player states
        return TransportState(shown) if shown in ("compiling", "buffering", "playing") else None

    # ---- control (GUI thread) ------------------------------------------------------

    def start(self) -> None:
        self.active = True
        self.stateChanged.emit(TransportState.COMPILING)
        self.task = workers.run_task(self._run, done=self._finished, failed=self._failed, name="generate")

    def stop(self) -> None:
        if not self.active:
            return
        self._stop.set()
        self._ended.set()
        self.stateChanged.emit(TransportState.STOPPING)
        if self.generator is not None:
            self.generator.stop()

    def update(self, **changes) -> None:
        if self.generator is not None:
            try:
                self.generator.update(**changes)
            except ValueError as error:
                self.error.emit(str(error))

    def set_effects(self, effects) -> None:
        """Swaps the effects chain (from the next block on)."""
        self.stage.effects = effects

    def wait(self, seconds: float) -> bool:
        return self._done.wait(seconds) if self.task is not None else True

    def stats(self) -> dict:
        """seconds: the position heard, in the generated audio (the chain's latency
        taken off); fill, rtf, underruns: the player's; rollbacks, given_up: the watchdog's
        (None when it is off)."""
        output = self.output
        generator = self.generator
        watched = generator if generator is not None and generator.settings.watchdog is not None else None
        return {
            "rollbacks": len(watched.rollbacks) if watched is not None else None,
            "given_up": len(watched.watchdog_notices) if watched is not None else None,
            "seconds": max(0, self.heard_samples - self.stage.latency_samples) / RATE,
            "fill": output.fill_fraction if output is not None else None,
            "rtf": (output.realtime_factor if output is not None else None)
            or (generator.realtime_factor if generator is not None else None),
            "underruns": getattr(output, "underruns", 0) if output is not None else 0,
        }

    def _finished(self, take) -> None:
        self.active = False
        self.stateChanged.emit(TransportState.IDLE)
        self.takeSaved.emit(take)

    def _failed(self, text: str) -> None:
        self.active = False
        self.stateChanged.emit(TransportState.ERROR)
        self.error.emit(text)
        self.takeSaved.emit(None)

    # ---- the worker ----------------------------------------------------------------

    def _run(self, task):
        try:
            return self._generate()
        finally:
            self._done.set()

    def _generate(self):
        from engine.generator import Generator  # noqa: PLC0415 - at the first take, not at start-up: numba, +0.2 s

        settings = self.settings
        generator = Generator(self.checkpoint, settings)
        if self.seed_audio is not None:
            generator.prime(self.seed_audio.audio, RATE)
        self.prime_samples = generator.prime_samples
        self.generator = generator
        if self._stop.is_set():
            return None
        total = None if self.seconds is None else self.prime_samples + int(round(self.seconds * RATE))
        meta = {
            "checkpoint": self.checkpoint.name,
            "checkpoint_path": str(self.checkpoint.path or ""),
            "temperature": settings.temperature,
            "top_p": settings.top_p,
            "random_seed": settings.random_seed,
            "voices": settings.voices,
            "seed_audio": self.seed_audio.source if self.seed_audio is not None else "",
            "seed_frames": self.prime_samples,
        }
        device_error = self._check_output()
        # compile (or load from the compile cache) before the sound card starts: with seed
        # audio the player would otherwise play it and then starve while compiling
        generator.warmup()
        if self._stop.is_set():
            return None
        writer = self.writer = self.library.begin_take(meta)  # before the stage's take tap writes
        player = None
        if device_error is None:
            player = self._open_player(generator, total)
        else:
            self.notice.emit(device_error)
        if player is not None:
            error = self._play(player)
        else:
            error = self._render(generator, total)
        if writer.closed:  # the library gave up on the take (e.g. the disk is full)
            raise error
        effects = self.stage.effects
        take = writer.finish(effects=effects.snapshot().to_json() if effects is not None else "")
        if error is not None:
            raise RuntimeError(
                f"Generation stopped: {error}" + (f" (the first {take.duration:.1f} s were saved)" if take else "")
            )
        return take

    def _check_output(self) -> str | None:
        """None if the output device is there, else a message (checked before compiling)."""
        try:
            resolve(self.devices.output, "output")
        except AudioUnavailable as error:
            reason = str(error).split("; render")[0]  # drop the command-line hint
            return f"No sound: {reason}. The take is generated into the library without playing."
        except Exception as error:  # noqa: BLE001 - PortAudio raises several types
            return (
                f"No sound: the audio system failed ({error}). The take is generated into the library without playing."
            )
        return None

    def _open_player(self, generator, total):
        """The engine's Player running this session's stage on the chosen output device,
        started; None (and a notice) when there is no usable device: the take is then
        rendered without sound."""
        player = Player(
            generator,
            device=self.devices.output,
            latency=self.devices.latency,
            keep=False,
            max_seconds=None if total is None else total / RATE,
            buffer_seconds=1.5,
            start_seconds=1.0,
            stage=self.stage,
            on_end=self._ended.set,
        )
        if not start_player(
            player,
            lambda why: self.notice.emit(f"No sound: {why}. The take is generated into the library without playing."),
        ):
            return None
        self.output = player
        return player

    def _on_chunk(self, chunk) -> None:
        """The take tap (worker thread): every generated chunk goes to the library as it is made."""
        if self._write_error is None:
            try:
                if self.writer is None:
                    raise RuntimeError("the take tap ran before the take was begun")
                self.writer.write(chunk)
            except Exception as error:  # noqa: BLE001 - stop the take, report it
                self._write_error = error
                self._ended.set()
                self._stop.set()
                if self.generator is not None:
                    self.generator.stop()
                return
        self.generated += chunk.shape[-1]

    def _play(self, player):
        """Waits (without polling) for Stop, the end of the take or a failure."""
        self._ended.wait()
        player.stop()
        if self._write_error is not None:
            return self._write_error
        return player.error

    def _render(self, generator, total):
        """Without a sound card: the same stage, paced at real time."""
        started = time.perf_counter()
        self.stateChanged.emit(TransportState.RENDERING)
        try:
            for chunk in generator.chunks(total):
                if self._stop.is_set():
                    break
                in_seed_audio = self.rendered < self.prime_samples
                self.stage.process(chunk)
                if self._write_error is not None:
                    return self._write_error
                self.rendered += chunk.shape[-1]
                ahead = self.rendered / RATE - (time.perf_counter() - started)
                if ahead > 0.25 and not in_seed_audio:
                    self._stop.wait(ahead - 0.2)
        except Exception as failure:  # noqa: BLE001 - keep what was made, then report
            return failure
        return None


class Playback(QObject):
    """Plays a clip (a take or the seed audio) with the engine's Player, through an effects
    chain when one is given; a source for the display timer like `GenerationSession`.
    Errors come through `error`."""

    error = pyqtSignal(str)
    _ended = pyqtSignal()  # from the player's worker thread; delivered queued

    def __init__(self, parent=None):
        super().__init__(parent)
        self.player = None
        self.seed_frames = 0
        self._ended.connect(self._report)

    def play(
        self, audio: np.ndarray, devices: AudioDevices = AudioDevices(), seed_frames: int = 0, effects=None
    ) -> bool:
        """audio: float32 [voices, n] or [n] at 16 kHz; voices are mixed."""
        self.stop()
        audio = np.asarray(audio, np.float32)
        pieces = [audio[..., i : i + 1600] for i in range(0, audio.shape[-1], 1600)]
        player = Player(
            pieces,
            device=devices.output,
            latency=devices.latency,
            keep=False,
            start_seconds=0.1,
            stage=Stage(effects),
            on_end=self._ended.emit,
        )
        if not start_player(player, lambda why: self.error.emit(f"Cannot play: {why}")):
            return False
        self.seed_frames = seed_frames
        self.player = player
        return True

    def _report(self) -> None:
        player = self.player
        if player is not None and player.error is not None:
            self.error.emit(f"Playback failed: {player.error}")

    @property
    def program(self) -> RingBuffer:
        return self.player.program

    @property
    def heard_samples(self) -> int:
        return self.player.heard_samples

    @property
    def playing(self) -> bool:
        return self.player is not None and self.player.state in ("compiling", "buffering", "playing", "draining")

    @property
    def played(self) -> int:
        """Frames (at 16 kHz) that reached the sound card."""
        return 0 if self.player is None else self.player.heard_samples

    def stop(self) -> None:
        if self.player is not None:
            self.player.stop()
