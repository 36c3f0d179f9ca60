"""The runaway watchdog: notices a voice drifting into silence or noise and rolls it back.

A long take can run away: the model grows sure that the music has ended and holds digital
silence for seconds (the `realtime` piano model at 8,934 steps spends 17-51% of its takes
there), or it loses the thread and hisses. Both show in the model's own statistic, the
*surprisal* of each sample it draws, -log2 p(token) under its distribution at temperature 1
(the kernel and the JAX path output it; at temperature 1 its mean over a window estimates the
distribution's mean entropy there, so one statistic serves both):

- silence: the model is near-certain of every sample (mean surprisal over the window below
  `silence_bits`) and the audio is quiet (RMS below `silence_db`), which tells a held
  silence from a steady loud tone that is also easy to predict;
- noise: the model can barely predict anything (mean surprisal above `noise_bits`, where
  8 bits is a uniform guess over the 256 mu-law classes).

Recovery: every `snapshot_seconds` of healthy, sounding audio the generator copies the voice's
state, and keeps the copy (the last `snapshots` of them) once `confirm_seconds` of sounding audio
followed it: a copy taken just as the voice fell silent would only lead back into the silence.
On drift it restores the newest copy and resamples the voice from a fresh random stream
(`engine.sampling.stream_seed`: a function of the take's seed and the voice's rollback count,
so a take stays reproducible). After
`retries` failed attempts from one copy it drops that copy and goes back to the one before;
with none left it gives up on the episode with a one-line notice and lets the voice play on
until it sounds healthy again. Each rollback discards at least one window of generated audio
and the copies are finite, so it never loops forever.

Voices of a take step in lockstep (their pooled levels fire together), so copies are taken and
restored only where the take's position is a multiple of the model's total pooling: a voice's
state restored there is in phase with the others.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable

import numpy as np

from engine.mulaw import SAMPLE_RATE
from engine.sampling import stream_seed


@dataclasses.dataclass(frozen=True)
class WatchdogSettings:
    """When the watchdog calls a voice runaway, and how far it goes back.

    Attributes:
      window_seconds: the statistics' window; drift is called only when a whole window drifted.
      silence_bits: mean surprisal below which (with silence_db) a window is silence.
      silence_db: RMS (dBFS) below which a window counts as quiet.
      noise_bits: mean surprisal above which a window is noise.
      snapshot_seconds: healthy audio between two copies of a voice's state.
      confirm_seconds: sounding audio that must follow a copy before it is kept.
      snapshots: copies kept per voice (how far back it can go: about snapshots x snapshot_seconds).
      retries: attempts from one copy before going back to the one before.
    """

    window_seconds: float = 1.0
    silence_bits: float = 0.25
    silence_db: float = -60.0
    noise_bits: float = 7.0
    snapshot_seconds: float = 1.0
    confirm_seconds: float = 0.5
    snapshots: int = 3
    retries: int = 2

    def __post_init__(self):
        if self.window_seconds <= 0 or self.snapshot_seconds <= 0 or self.confirm_seconds < 0:
            raise ValueError("the watchdog's window and snapshot spacing must be > 0 s, its confirmation >= 0 s")
        if self.snapshots < 1 or self.retries < 1:
            raise ValueError("the watchdog needs at least one snapshot and one retry")
        if not 0 <= self.silence_bits < self.noise_bits <= 8:
            raise ValueError(f"need 0 <= silence_bits < noise_bits <= 8, got {self.silence_bits}, {self.noise_bits}")

    @property
    def window_samples(self) -> int:
        return max(1, round(self.window_seconds * SAMPLE_RATE))

    @property
    def snapshot_samples(self) -> int:
        return max(1, round(self.snapshot_seconds * SAMPLE_RATE))

    @property
    def confirm_samples(self) -> int:
        return round(self.confirm_seconds * SAMPLE_RATE)


class Drift(enum.Enum):
    """What a voice ran away into."""

    SILENCE = "silence"
    NOISE = "noise"


@dataclasses.dataclass(frozen=True)
class Rollback:
    """One rollback of one voice.

    Attributes:
      voice: which voice.
      drift: what it drifted into.
      kept: samples of the voice's generated take that stand after it (the rest is dropped).
      at_seconds: where the voice's take stood when the drift was called, in seconds.
    """

    voice: int
    drift: Drift
    kept: int
    at_seconds: float


@dataclasses.dataclass
class _Snapshot:
    """A copy of one voice's state (opaque here: the generator's backend makes and restores it)."""

    state: object
    kept: int  # samples of the voice's take kept when it was taken
    attempts: int = 0  # rollbacks to it so far


class TakeWatch:
    """The watchdog of one take: per-voice statistics windows, state copies and rollbacks.

    The generator calls `begin` with the take's starting state, `observe` after every chunk and,
    where the take's position is in phase (see the module docstring), `check`, which copies and
    restores voices' states through the two functions it is given.

    Args:
      settings: the thresholds.
      voices: voices of the take.
      random_seed: the take's seed (stream 0 of every voice).
    """

    def __init__(self, settings: WatchdogSettings, voices: int, random_seed: int):
        self.settings = settings
        self.random_seed = random_seed
        window = settings.window_samples
        self._bits = np.zeros((voices, window), np.float32)  # surprisal of the last window
        self._power = np.zeros((voices, window), np.float32)  # squared audio of the last window
        self._filled = np.zeros(voices, np.int64)  # samples in the window since the voice's last rollback
        self._recent = np.zeros(voices, np.int64)  # samples observed since the last check
        self.kept = np.zeros(voices, np.int64)  # samples of each voice's take that stand
        self._streams = np.zeros(voices, np.int64)  # random streams used by each voice so far
        self._snapshots: list[list[_Snapshot]] = [[] for _ in range(voices)]  # kept copies, oldest first
        self._candidates: list[_Snapshot | None] = [None] * voices  # copies waiting for confirmation
        self._given_up = np.zeros(voices, bool)
        self.rollbacks: list[Rollback] = []
        self.notices: list[str] = []

    @property
    def seeds(self) -> np.ndarray:
        """int64 [voices]: each voice's current random stream's seed."""
        return np.array([stream_seed(self.random_seed, int(s)) for s in self._streams], np.int64)

    @property
    def settled(self) -> np.ndarray:
        """int64 [voices]: how much of each voice's take no rollback can take back any more (up
        to its oldest copy; a new copy is never older than the voice's take)."""
        return np.array(
            [history[0].kept if history else kept for history, kept in zip(self._snapshots, self.kept, strict=True)],
            np.int64,
        )

    def begin(self, copy_state: Callable[[int], object]) -> None:
        """Keeps the take's starting state (after its seed audio, if any) as every voice's first copy."""
        for voice, history in enumerate(self._snapshots):
            history[:] = [_Snapshot(copy_state(voice), 0)]

    def observe(self, audio: np.ndarray, bits: np.ndarray) -> None:
        """Adds a chunk: audio float32 [voices, n] in [-1, 1] and its surprisal bits [voices, n]."""
        n = min(audio.shape[1], self._bits.shape[1])
        for window, new in ((self._bits, bits), (self._power, np.square(audio))):
            window[:, :-n] = window[:, n:].copy()
            window[:, -n:] = new[:, -n:]
        self._filled += audio.shape[1]
        self._recent += audio.shape[1]
        self.kept += audio.shape[1]

    def drift(self, voice: int) -> Drift | None:
        """What the voice's last full window drifted into (None: healthy, or not a full window yet)."""
        if self._filled[voice] < self._bits.shape[1]:
            return None
        return self._classify(self._bits[voice], self._power[voice])

    def check(
        self,
        copy_state: Callable[[int], object],
        restore_state: Callable[[int, object], None],
    ) -> list[Rollback]:
        """Copies healthy voices' states and rolls drifted voices back; returns the rollbacks.

        Args:
          copy_state: copy_state(voice) -> a copy of the voice's current state.
          restore_state: restore_state(voice, copy) puts a copy back.
        """
        done = []
        for voice in range(self._bits.shape[0]):
            drift = self.drift(voice)
            recent = int(min(self._recent[voice], self._bits.shape[1]))
            sounding = recent > 0 and self._classify(self._bits[voice, -recent:], self._power[voice, -recent:]) is None
            if drift is None and sounding:
                self._given_up[voice] = False
                self._keep_copies(voice, copy_state)
                continue
            self._candidates[voice] = None  # not followed by sounding audio: never kept
            if drift is not None and not self._given_up[voice]:
                rollback = self._roll_back(voice, drift, restore_state)
                if rollback is not None:
                    done.append(rollback)
        self._recent[:] = 0
        self.rollbacks += done
        return done

    def _keep_copies(self, voice: int, copy_state: Callable[[int], object]) -> None:
        """At a healthy check: confirms the voice's waiting copy, or copies its state when due."""
        history, candidate, kept = self._snapshots[voice], self._candidates[voice], int(self.kept[voice])
        if candidate is not None:
            if kept - candidate.kept >= self.settings.confirm_samples:
                history.append(candidate)
                del history[: -self.settings.snapshots]
                self._candidates[voice] = None
        elif not history or kept - history[-1].kept >= self.settings.snapshot_samples:
            self._candidates[voice] = _Snapshot(copy_state(voice), kept)

    def _roll_back(self, voice: int, drift: Drift, restore_state: Callable[[int, object], None]) -> Rollback | None:
        history = self._snapshots[voice]
        while history and history[-1].attempts >= self.settings.retries:
            history.pop()
        at_seconds = self.kept[voice] / SAMPLE_RATE
        if not history:
            self._given_up[voice] = True
            self.notices.append(
                f"watchdog: voice {voice + 1} still runs into {drift.value} at {at_seconds:.1f} s after "
                f"every retry; it plays on as generated"
            )
            return None
        snapshot = history[-1]
        snapshot.attempts += 1
        restore_state(voice, snapshot.state)
        self._streams[voice] += 1
        self.kept[voice] = snapshot.kept
        self._filled[voice] = 0
        return Rollback(voice, drift, snapshot.kept, float(at_seconds))

    def _classify(self, bits: np.ndarray, power: np.ndarray) -> Drift | None:
        mean_bits = float(np.mean(bits))
        if mean_bits > self.settings.noise_bits:
            return Drift.NOISE
        rms_db = 10 * np.log10(float(np.mean(power)) + 1e-20)
        if mean_bits < self.settings.silence_bits and rms_db < self.settings.silence_db:
            return Drift.SILENCE
        return None
