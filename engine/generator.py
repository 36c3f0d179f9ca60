"""The stepwise generator: a model checkpoint turned into a stream of audio chunks.

    from engine.generator import Generator, GenerationSettings

    gen = Generator(None, GenerationSettings(temperature=1.0, top_p=0.95, random_seed=7, voices=2))
    gen.prime(seed_audio, sample_rate=44100)   # optional: float32 [n] or [voices, n]
    audio = gen.render(seconds=4.0)            # float32 [voices, 64000], or:
    for chunk in gen.chunks():                 # float32 [voices, chunk_samples] each
        ...                                    # until gen.stop() (from any thread)

Two backends run the samples of a chunk (`Backend`;
HARMONIC_STEP_BACKEND=kernel|kernel-float32|jax overrides the default):

- KERNEL (the default wherever numba imports): `engine.fast_step`, one fused numba loop
  per chunk over weights packed once, sampling inside it at one uniform draw per
  sample (`sampling.chunk_uniforms`); 1.3-3x the JAX path's speed on a 2-core CPU
  (docs/benchmarks.md, section fast_step). Its matrices are bfloat16,
  half the bytes to read per sample; KERNEL_FLOAT32 keeps them float32, the JAX path's
  float32 arithmetic (docs/model.md: what bfloat16 gains and what it changes).
- JAX (the reference and fallback): one compiled `lax.scan` of `engine.model.step`
  per chunk, with the chunk's Gumbel noise drawn inside the same program.

Either way no Python runs per sample, pooled levels step only when their down-pool
fires, and seed audio is consumed by `model.prefill`, parallel over time in chunks of
bounded size, for any length (the kernel then continues from the converted state).
Both sample from the same distribution; a random seed gives one reproducible take per backend.

With `GenerationSettings.watchdog` both also output each sample's surprisal, and
`engine.watchdog.TakeWatch` rolls voices that run away into silence or noise back to a copy
of their state and resamples them: `render` drops the rolled-back audio from the take; the
live stream (`next_chunk`, `chunks`) cannot take back what was played, so it goes on from the
copy with a 10 ms crossfade from the last sample played.

Thread use: one thread (a player's worker) calls `next_chunk`/`chunks`; any thread may
call `stop`, `update` and read the statistics properties. The kernel (nogil) and JAX
release the GIL while a chunk computes, so a sound-card callback in the same process
keeps running.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Union

import jax
import jax.numpy as jnp
import numpy as np
import soxr

from engine import model, mulaw, sampling
from engine.checkpoint import ModelCheckpoint, load_model
from engine.generation_settings import GenerationSettings
from engine.mulaw import SAMPLE_RATE
from engine.sampling import NOISE_BLOCK
from engine.watchdog import Rollback, TakeWatch

if TYPE_CHECKING:
    from engine.fast_step import KernelState, PackedModel

fast_step: ModuleType | None
try:
    from engine import fast_step
except ImportError:  # numba missing or unusable on this platform: the JAX path serves
    fast_step = None

# A take's state between chunks: KERNEL's fast_step.KernelState; JAX's (model state, next logits).
TakeState = Union["KernelState", tuple[model.ModelState, jax.Array]]

BACKEND_VARIABLE = "HARMONIC_STEP_BACKEND"

RESUME_FADE = NOISE_BLOCK
"""Samples over which a live voice crossfades from its last played sample into the audio after
a rollback (10 ms: no click, too short to hear as a fade)."""


class Backend(enum.Enum):
    """What runs the samples of a chunk (see the module docstring)."""

    KERNEL = "kernel"
    KERNEL_FLOAT32 = "kernel-float32"
    JAX = "jax"

    @classmethod
    def default(cls) -> Backend:
        """HARMONIC_STEP_BACKEND if set, else KERNEL where numba is available, else JAX."""
        choice = os.environ.get(BACKEND_VARIABLE, "").strip().lower()
        if choice:
            try:
                return cls(choice)
            except ValueError:
                choices = ", ".join(f"'{backend.value}'" for backend in cls)
                raise ValueError(f"{BACKEND_VARIABLE} must be one of {choices}, got {choice!r}") from None
        return cls.KERNEL if fast_step is not None else cls.JAX


@functools.partial(jax.jit, static_argnames=("config", "n_blocks", "greedy", "nucleus", "surprisal"))
def generate_chunk(
    params: dict,
    config: model.ModelConfig,
    state: model.ModelState,
    logits: jax.Array,
    random_seed: jax.Array,
    first_block: jax.Array,
    temperature: jax.Array,
    top_p: jax.Array,
    *,
    n_blocks: int,
    greedy: bool,
    nucleus: bool,
    surprisal: bool = False,
) -> tuple[jax.Array, jax.Array | None, model.ModelState, jax.Array]:
    """One chunk: n_blocks * NOISE_BLOCK samples in one compiled scan.

    Args:
      params, config: the model.
      state: the model state after the last sampled token was fed to `step`.
      logits: float32 [B, 256], the distribution of the next sample (from the last
        `step` or from `prefill`).
      random_seed: uint32 [B], each voice's seed; first_block: select the noise (`sampling.chunk_noise`).
      temperature, top_p: sampling controls (traced).
      n_blocks, greedy, nucleus: static.
      surprisal: static; also return each sample's -log2 softmax(logits_t)[token_t] (bits).

    Returns:
      (tokens int32 [n, B], surprisal float32 [n, B] or None, next state, next logits [B, 256]).
      Per sample t: token_t = sample(logits_t, noise_t); logits_{t+1}, state = step(state, token_t).
    """
    noise = sampling.chunk_noise(random_seed, first_block, n_blocks, logits.shape[0])

    def body(carry, gumbel):
        state, logits = carry
        token = sampling.sample(logits, gumbel, temperature, top_p, greedy=greedy, nucleus=nucleus)
        bits = None
        if surprisal:
            log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
            bits = -jnp.take_along_axis(log_probs, token[:, None], axis=-1)[:, 0] / jnp.log(2.0)
        logits, state = model.step(params, config, state, token)
        return (state, logits), (token, bits)

    (state, logits), (tokens, bits) = jax.lax.scan(body, (state, logits), noise)
    return tokens, bits, state, logits


class Generator:
    """Generates audio chunk by chunk from a model checkpoint.

    Args:
      checkpoint: a loaded `ModelCheckpoint`, a checkpoint path, or None for the shipped
        default (raises `engine.checkpoint.CheckpointError` with a clear message if it
        is missing or damaged).
      settings: `GenerationSettings`; change later with `update`.
      backend: `Backend` (None: `Backend.default()`); KERNEL(_FLOAT32) without numba raises.

    Attributes:
      sample_rate: 16000.
      model: the `ModelCheckpoint` in use.
    """

    sample_rate = SAMPLE_RATE

    def __init__(
        self,
        checkpoint: ModelCheckpoint | str | Path | None = None,
        settings: GenerationSettings | None = None,
        backend: Backend | None = None,
    ):
        self.model = checkpoint if isinstance(checkpoint, ModelCheckpoint) else load_model(checkpoint)
        self.config = self.model.config
        self.backend = Backend.default() if backend is None else backend
        self._packed: PackedModel | None = None
        if self.backend is not Backend.JAX:
            if fast_step is None:
                raise ValueError("the kernel backend needs numba, which did not import; use Backend.JAX")
            bf16 = self.backend is Backend.KERNEL
            self._packed = fast_step.PackedModel.pack(self.model.params, self.config, bf16=bf16)
        self.params = jax.device_put(self.model.params)
        self._settings = settings or GenerationSettings()
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._prime_tokens: np.ndarray | None = None  # int32 [voices, L]
        self._prime: tuple[np.ndarray, int] | None = None  # the seed audio as given, for reset()
        self._compiled: set[tuple] = set()
        self.first_chunk_seconds: float | None = None  # first chunk of the first take: load + compile
        self.reset()

    # ----- settings and lifecycle -------------------------------------------------------

    @property
    def settings(self) -> GenerationSettings:
        return self._settings

    @property
    def voices(self) -> int:
        return self._settings.voices

    @property
    def chunk_samples(self) -> int:
        """Samples per voice in each generated chunk."""
        return self._settings.chunk_samples

    def update(self, **changes) -> None:
        """Changes temperature and/or top_p from the next chunk on (thread-safe).

        Other fields (random_seed, voices, chunk_ms, prime) define the take: change them with
        `reset(settings)`. Turning top_p below 1 the first time compiles a new program.
        """
        allowed = {"temperature", "top_p"}
        if set(changes) - allowed:
            raise ValueError(
                f"update() changes only {sorted(allowed)}; use reset() for {sorted(set(changes) - allowed)}"
            )
        with self._lock:
            self._settings = dataclasses.replace(self._settings, **changes)

    def reset(self, settings: GenerationSettings | None = None) -> None:
        """Starts the take again from the beginning; clears `stop`.

        Args:
          settings: new settings for the take (None keeps them). The seed audio given to
            `prime` is kept (re-encoded if the number of voices changes; a per-voice one
            [voices, n] is dropped then).
        """
        with self._lock:
            if settings is not None:
                old, self._settings = self._settings, settings
                if self._prime is not None and (settings.voices, settings.prime_scale) != (old.voices, old.prime_scale):
                    audio, rate = self._prime
                    # Per-voice seed audio [voices, n] cannot follow a change of voices: dropped.
                    self._prime_tokens = (
                        prime_tokens(audio, rate, settings.voices, settings.prime_scale) if audio.ndim == 1 else None
                    )
                    self._prime = self._prime if audio.ndim == 1 else None
            self._stop.clear()
            self._state: TakeState | None = None
            watchdog = self._settings.watchdog
            self._watch = None if watchdog is None else TakeWatch(watchdog, self.voices, self._settings.random_seed)
            self._fade_from: dict[int, float] = {}  # live: voice -> last sample played before its rollback
            self.last_rollbacks: tuple[Rollback, ...] = ()  # those of the latest chunk
            self._held = np.zeros((self.voices, 0), np.float32)  # settled_chunks: audio not out yet
            self._held_to = 0  # settled_chunks: how much of _held stands for every voice
            self.samples_generated = 0  # per voice, excluding the prime
            self._prime_out = 0  # prime samples already returned (include_prime)
            self.compute_seconds = 0.0
            self._timed_samples = 0
            self._untimed = True

    def stop(self) -> None:
        """Asks `chunks()` to end after the chunk in progress; callable from any thread."""
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    # ----- priming -------------------------------------------------------------------------

    def prime(self, audio: np.ndarray | None, sample_rate: int = SAMPLE_RATE) -> None:
        """Starts the take from seed audio (or clears it with None) and resets the take.

        Args:
          audio: float array [n] (the same seed audio for every voice) or [voices, n], any n >= 0,
            at `sample_rate`; it is resampled to 16 kHz, scaled with settings.prime_scale
            and mu-law encoded.
          sample_rate: the audio's rate in Hz.
        """
        with self._lock:
            if audio is None:
                self._prime_tokens = self._prime = None
            else:
                audio = np.asarray(audio, np.float32)
                self._prime_tokens = prime_tokens(audio, sample_rate, self.voices, self._settings.prime_scale)
                self._prime = (audio, sample_rate)
            self.reset()

    @property
    def prime_samples(self) -> int:
        """Length of the seed audio in samples at 16 kHz (0 without one)."""
        return 0 if self._prime_tokens is None else self._prime_tokens.shape[1]

    # ----- generation --------------------------------------------------------------------------

    def start(self, progress: Callable[[int, int], None] | None = None) -> None:
        """Computes the state at the start of the take now, consuming the seed audio (the first
        chunk does it otherwise); a no-op once started.

        Args:
          progress: called as progress(samples_done, samples_total) while seed audio primes.
        """
        with self._lock:
            if self._state is not None:
                return
            self._state = self._initial_state(self.voices, self._prime_tokens, progress)
            if self._watch is not None:
                self._watch.begin(self._copy_voice)

    def _initial_state(self, voices: int, prime: np.ndarray | None, progress=None) -> TakeState:
        """The state at the start of a take, in the backend's form."""
        if prime is None:
            if self._packed is not None:
                return self._packed.start(voices)
            state = model.init_state(self.params, self.config, voices)
            logits, state = model.step(
                self.params, self.config, state, jnp.full((voices,), model.START_TOKEN, jnp.int32)
            )
        else:
            logits, state = model.prefill(self.params, self.config, prime, progress)
            if self._packed is not None:
                return self._packed.from_model_state(state, logits)
        return state, logits

    def _run_chunk(
        self, state: TakeState, first_block: int, settings: GenerationSettings, seeds: np.ndarray, surprisal: bool
    ) -> tuple[np.ndarray, np.ndarray | None, TakeState]:
        """One chunk from `state` with each voice's seed `seeds` (int [voices]): (tokens int32
        [voices, chunk_samples], their surprisal float32 [voices, chunk_samples] if asked, next state)."""
        n_blocks = settings.chunk_samples // NOISE_BLOCK
        if self._packed is not None:
            assert not isinstance(state, tuple)  # the kernel's own state
            uniforms = sampling.chunk_uniforms(seeds, first_block, n_blocks, state.voices)
            bits = np.empty(uniforms.shape, np.float32) if surprisal else None
            tokens = self._packed.generate(state, uniforms, settings.temperature, settings.top_p, bits)
            return tokens.T, None if bits is None else bits.T, state
        greedy, nucleus = sampling.static_flags(settings.temperature, settings.top_p)
        assert isinstance(state, tuple)  # JAX's (model state, next logits)
        model_state, logits = state
        tokens, bits, model_state, logits = generate_chunk(
            self.params,
            self.config,
            model_state,
            logits,
            np.asarray(seeds, np.uint32),
            np.int32(first_block),
            np.float32(max(settings.temperature, 1e-6)),
            np.float32(settings.top_p),
            n_blocks=n_blocks,
            greedy=greedy,
            nucleus=nucleus,
            surprisal=surprisal,
        )
        # asarray waits for the result
        return np.asarray(tokens).T, None if bits is None else np.asarray(bits).T, (model_state, logits)

    def _copy_voice(self, voice: int) -> object:
        """A copy of one voice's part of the take's state (for `TakeWatch`)."""
        state = self._state
        if isinstance(state, tuple):  # JAX's arrays are immutable: slices are copies
            return jax.tree_util.tree_map(lambda leaf: leaf[voice] if leaf.ndim else leaf, state)
        assert state is not None
        return state.values[voice].copy(), state.logits[voice].copy()

    def _restore_voice(self, voice: int, copy: object) -> None:
        """Puts a `_copy_voice` copy back. The shared step counters stay: copies are taken and
        restored only in phase (`engine.watchdog`)."""
        state = self._state
        if isinstance(state, tuple):
            self._state = jax.tree_util.tree_map(
                lambda leaf, part: leaf.at[voice].set(part) if leaf.ndim else leaf, state, copy
            )
            return
        assert state is not None and isinstance(copy, tuple)
        state.values[voice], state.logits[voice] = copy

    def warmup(self) -> float:
        """Compiles (or loads from the compile cache) the programs of the current settings
        without advancing the take. Returns the seconds it took."""
        began = time.perf_counter()
        with self._lock:
            settings = self._settings
            if self._packed is not None:
                self._packed.precompile()  # a later take may have another number of voices
            seeds = np.full(settings.voices, settings.random_seed)
            surprisal = settings.watchdog is not None
            self._run_chunk(self._initial_state(settings.voices, None), 0, settings, seeds, surprisal)
            if self._prime_tokens is not None:
                # One chunk's worth compiles the program seed audio of any length runs.
                first_chunk = self._prime_tokens[:, : model.PREFILL_CHUNK]
                jax.block_until_ready(model.prefill(self.params, self.config, first_chunk))
        return time.perf_counter() - began

    def next_tokens(self) -> np.ndarray:
        """The next chunk as mu-law classes, int32 [voices, n]: n = chunk_samples, or
        with include_prime first the seed audio's tokens in pieces of at most chunk_samples."""
        with self._lock:
            settings = self._settings
            if settings.include_prime and self._prime_tokens is not None and self._prime_out < self.prime_samples:
                piece = self._prime_tokens[:, self._prime_out : self._prime_out + settings.chunk_samples]
                self._prime_out += piece.shape[1]
                return piece.copy()
            began = time.perf_counter()
            self.start()
            assert self._state is not None  # start() made it
            first_block = self.samples_generated // NOISE_BLOCK
            watch = self._watch
            seeds = np.full(self.voices, settings.random_seed) if watch is None else watch.seeds
            tokens, bits, self._state = self._run_chunk(self._state, first_block, settings, seeds, watch is not None)
            self.samples_generated += tokens.shape[1]
            self.last_rollbacks = ()
            if watch is not None:
                assert bits is not None
                watch.observe(mulaw.decode(tokens), bits)
                if self.samples_generated % self.config.total_pooling == 0:  # in phase: see engine.watchdog
                    self.last_rollbacks = tuple(watch.check(self._copy_voice, self._restore_voice))
            elapsed = time.perf_counter() - began
            if self._untimed:  # the take's first chunk: starting, maybe compiling
                self._untimed = False
                if self.first_chunk_seconds is None:
                    self.first_chunk_seconds = elapsed
            else:
                self.compute_seconds += elapsed
                self._timed_samples += tokens.shape[1]
            return tokens

    def next_chunk(self) -> np.ndarray:
        """The next chunk of audio, float32 [voices, n] in [-1, 1] (see `next_tokens`). A voice
        the watchdog rolled back in the chunk before starts with a crossfade (RESUME_FADE
        samples) from the last sample it played into its resumed audio."""
        with self._lock:
            audio = mulaw.decode(self.next_tokens())
            fade = np.linspace(0.0, 1.0, min(RESUME_FADE, audio.shape[1]), dtype=np.float32)
            for voice, last in self._fade_from.items():
                audio[voice, : fade.size] = audio[voice, : fade.size] * fade + last * (1 - fade)
            self._fade_from = {rollback.voice: float(audio[rollback.voice, -1]) for rollback in self.last_rollbacks}
            return audio

    def chunks(self, max_samples: int | None = None) -> Iterator[np.ndarray]:
        """Yields `next_chunk()` until `stop()` or until `max_samples` samples per voice
        (the prime included when include_prime) have been yielded; the last chunk is
        trimmed to fit."""
        done = 0
        while not self._stop.is_set() and (max_samples is None or done < max_samples):
            chunk = self.next_chunk()
            if max_samples is not None:
                chunk = chunk[:, : max_samples - done]
            done += chunk.shape[1]
            yield chunk

    def settled_chunks(self, max_samples: int | None = None) -> Iterator[np.ndarray]:
        """Like `chunks`, but the take as it stands: with the watchdog, audio it rolled back is
        dropped, and audio comes out only once no rollback can take it back any more (a few
        seconds late), all voices at once. The take is generated one statistics window past
        `max_samples`, so that a drift that begins before the end is caught too. Without the
        watchdog it yields what `chunks` yields.
        """
        with self._lock:
            watchdog = self._settings.watchdog
        done = 0
        while not self._stop.is_set() and self._prime_out < self.prime_samples and self._settings.include_prime:
            piece = self.next_chunk()[:, : None if max_samples is None else max_samples - done]
            done += piece.shape[1]
            yield piece
        limit = None if max_samples is None else max_samples - done  # of the generated part
        margin = 0 if watchdog is None else watchdog.window_samples
        base = int(self.kept_samples.min())  # the generated take stands up to here for every voice
        self._held = np.zeros((self.voices, 0), np.float32)  # each voice's audio from base on
        kept = np.full(self.voices, base)
        while (limit is None or base < limit) and not self._stop.is_set():
            audio = mulaw.decode(self.next_tokens())
            reach = int(kept.max()) + audio.shape[1] - base
            if reach > self._held.shape[1]:
                self._held = np.pad(self._held, ((0, 0), (0, reach - self._held.shape[1])))
            for voice, start in enumerate(kept - base):
                self._held[voice, start : start + audio.shape[1]] = audio[voice]
            kept = self.kept_samples
            end = int(kept.min()) if limit is None else min(int(kept.min()), limit)
            self._held_to = end - base
            settled = end if self._watch is None else min(int(self._watch.settled.min()), end)
            if self._stop.is_set() or (limit is not None and kept.min() >= limit + margin):
                settled = end  # stopped, or past the end by a window: what stands now is the take
            if settled > base:
                out = self._held[:, : settled - base].copy()
                self._held, self._held_to = self._held[:, settled - base :], self._held_to - (settled - base)
                base = settled
                yield out

    def unsettled(self) -> np.ndarray:
        """float32 [voices, n]: what `settled_chunks` holds back that stands so far (for a take
        cut short, e.g. by Ctrl-C, to keep it); empty without the watchdog."""
        with self._lock:
            return self._held[:, : self._held_to].copy()

    def render(self, seconds: float, progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """Generates `seconds` of new audio (plus the seed audio first with include_prime), as
        `settled_chunks` keeps it (without what the watchdog rolled back).

        Args:
          seconds: length of the generated part.
          progress: called as progress(samples_done, samples_total) after each chunk.

        Returns:
          float32 [voices, n]; shorter if `stop()` was called meanwhile.
        """
        prime = self.prime_samples if self._settings.include_prime else 0
        total = prime + int(round(seconds * SAMPLE_RATE))
        pieces, done = [], 0
        for chunk in self.settled_chunks(total):
            pieces.append(chunk)
            done += chunk.shape[1]
            if progress is not None:
                progress(done, total)
        if not pieces:
            return np.zeros((self.voices, 0), np.float32)
        return np.concatenate(pieces, axis=1)

    # ----- statistics ---------------------------------------------------------------------------

    @property
    def kept_samples(self) -> np.ndarray:
        """int64 [voices]: samples of each voice's generated take that stand (all of them
        without the watchdog; with it, less what it rolled back)."""
        if self._watch is None:
            return np.full(self.voices, self.samples_generated, np.int64)
        return self._watch.kept.copy()

    @property
    def rollbacks(self) -> tuple[Rollback, ...]:
        """The watchdog's rollbacks in this take so far (empty without it)."""
        return () if self._watch is None else tuple(self._watch.rollbacks)

    @property
    def watchdog_notices(self) -> tuple[str, ...]:
        """One line per runaway the watchdog gave up on in this take."""
        return () if self._watch is None else tuple(self._watch.notices)

    @property
    def realtime_factor(self) -> float | None:
        """Generated audio seconds per compute second (per voice), over the take's chunks
        after its first (which includes starting and compiling); None until two chunks
        were generated."""
        if self.compute_seconds <= 0 or self._timed_samples <= 0:
            return None
        return self._timed_samples / SAMPLE_RATE / self.compute_seconds


def prime_tokens(audio: np.ndarray, sample_rate: int, voices: int, scale: str = "minmax") -> np.ndarray:
    """Seed audio -> int32 [voices, n16k] mu-law classes.

    Args:
      audio: float [n] or [voices, n] (or [n, channels] is not accepted: mix down first).
      sample_rate: its rate; resampled to 16 kHz with soxr when different.
      voices: the generator's batch.
      scale: `engine.mulaw.scale` mode, applied per voice.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = np.broadcast_to(audio, (voices, audio.shape[0]))
    if audio.ndim != 2 or audio.shape[0] != voices:
        raise ValueError(f"seed audio must be [n] or [voices={voices}, n], got shape {audio.shape}")
    if sample_rate != SAMPLE_RATE and audio.shape[1]:
        audio = np.stack([soxr.resample(voice, sample_rate, SAMPLE_RATE) for voice in audio])
    return np.stack([mulaw.encode(mulaw.scale(voice, scale)) for voice in audio]).astype(np.int32)


@dataclasses.dataclass(frozen=True)
class SettledTake:
    """A generator's take as `Generator.settled_chunks` keeps it, as a source with
    `chunks(max_samples)` and `stop()` (what `harmonic generate` writes, directly or through
    `engine.effects.source.EffectsSource`)."""

    generator: Generator

    def chunks(self, max_samples: int | None = None) -> Iterator[np.ndarray]:
        return self.generator.settled_chunks(max_samples)

    def stop(self) -> None:
        self.generator.stop()
