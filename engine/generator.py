"""The stepwise generator: a model checkpoint turned into a stream of audio chunks.

    from engine.generator import Generator, GenerationSettings

    gen = Generator(None, GenerationSettings(temperature=1.0, top_p=0.95, random_seed=7, voices=2))
    gen.prime(seed_audio, sample_rate=44100)   # optional: float32 [n] or [voices, n]
    audio = gen.render(seconds=4.0)            # float32 [voices, 64000], or:
    for chunk in gen.chunks():                 # float32 [voices, chunk_samples] each
        ...                                    # until gen.stop() (from any thread)

Two backends run the samples of a chunk (`Backend`; HARMONIC_STEP_BACKEND=kernel|jax
overrides the default):

- KERNEL (the default wherever numba imports): `engine.fast_step`, one fused numba loop
  per chunk over weights packed once, sampling inside it at one uniform draw per
  sample (`sampling.chunk_uniforms`); 1.3-2x the JAX path's speed on a 2-core CPU,
  about 5x real time for `realtime` (docs/benchmarks.md).
- JAX (the reference and fallback): one compiled `lax.scan` of `engine.model.step`
  per chunk, with the chunk's Gumbel noise drawn inside the same program.

Either way no Python runs per sample, pooled levels step only when their down-pool
fires, and seed audio is consumed by `model.prefill`, parallel over time in chunks of
bounded size, for any length (the kernel then continues from the converted state).
Both sample from the same distribution; a random seed gives one reproducible take per backend.

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


class Backend(enum.Enum):
    """What runs the samples of a chunk (see the module docstring)."""

    KERNEL = "kernel"
    JAX = "jax"

    @classmethod
    def default(cls) -> Backend:
        """HARMONIC_STEP_BACKEND if set, else KERNEL where numba is available, else JAX."""
        choice = os.environ.get(BACKEND_VARIABLE, "").strip().lower()
        if choice:
            try:
                return cls(choice)
            except ValueError:
                raise ValueError(f"{BACKEND_VARIABLE} must be 'kernel' or 'jax', got {choice!r}") from None
        return cls.KERNEL if fast_step is not None else cls.JAX


@functools.partial(jax.jit, static_argnames=("config", "n_blocks", "greedy", "nucleus"))
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
) -> tuple[jax.Array, model.ModelState, jax.Array]:
    """One chunk: n_blocks * NOISE_BLOCK samples in one compiled scan.

    Args:
      params, config: the model.
      state: the model state after the last sampled token was fed to `step`.
      logits: float32 [B, 256], the distribution of the next sample (from the last
        `step` or from `prefill`).
      random_seed, first_block: select the noise (`sampling.chunk_noise`).
      temperature, top_p: sampling controls (traced).
      n_blocks, greedy, nucleus: static.

    Returns:
      (tokens int32 [n, B], next state, next logits [B, 256]). Per sample t:
      token_t = sample(logits_t, noise_t); logits_{t+1}, state = step(state, token_t).
    """
    noise = sampling.chunk_noise(random_seed, first_block, n_blocks, logits.shape[0])

    def body(carry, gumbel):
        state, logits = carry
        token = sampling.sample(logits, gumbel, temperature, top_p, greedy=greedy, nucleus=nucleus)
        logits, state = model.step(params, config, state, token)
        return (state, logits), token

    (state, logits), tokens = jax.lax.scan(body, (state, logits), noise)
    return tokens, state, logits


class Generator:
    """Generates audio chunk by chunk from a model checkpoint.

    Args:
      checkpoint: a loaded `ModelCheckpoint`, a checkpoint path, or None for the shipped
        default (raises `engine.checkpoint.CheckpointError` with a clear message if it
        is missing or damaged).
      settings: `GenerationSettings`; change later with `update`.
      backend: `Backend` (None: `Backend.default()`); KERNEL without numba raises.

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
        if self.backend is Backend.KERNEL:
            if fast_step is None:
                raise ValueError("the kernel backend needs numba, which did not import; use Backend.JAX")
            self._packed = fast_step.PackedModel.pack(self.model.params, self.config)
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
        self, state: TakeState, first_block: int, settings: GenerationSettings
    ) -> tuple[np.ndarray, TakeState]:
        """One chunk from `state`: (tokens int32 [voices, chunk_samples], next state)."""
        n_blocks = settings.chunk_samples // NOISE_BLOCK
        if self._packed is not None:
            assert not isinstance(state, tuple)  # the kernel's own state
            uniforms = sampling.chunk_uniforms(settings.random_seed, first_block, n_blocks, state.voices)
            return self._packed.generate(state, uniforms, settings.temperature, settings.top_p).T, state
        greedy, nucleus = sampling.static_flags(settings.temperature, settings.top_p)
        assert isinstance(state, tuple)  # JAX's (model state, next logits)
        model_state, logits = state
        tokens, model_state, logits = generate_chunk(
            self.params,
            self.config,
            model_state,
            logits,
            np.uint32(settings.random_seed),
            np.int32(first_block),
            np.float32(max(settings.temperature, 1e-6)),
            np.float32(settings.top_p),
            n_blocks=n_blocks,
            greedy=greedy,
            nucleus=nucleus,
        )
        return np.asarray(tokens).T, (model_state, logits)  # asarray waits for the result

    def warmup(self) -> float:
        """Compiles (or loads from the compile cache) the programs of the current settings
        without advancing the take. Returns the seconds it took."""
        began = time.perf_counter()
        with self._lock:
            settings = self._settings
            if self._packed is not None:
                self._packed.precompile()  # a later take may have another number of voices
            self._run_chunk(self._initial_state(settings.voices, None), 0, settings)
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
            tokens, self._state = self._run_chunk(self._state, first_block, settings)
            elapsed = time.perf_counter() - began
            if self._untimed:  # the take's first chunk: starting, maybe compiling
                self._untimed = False
                if self.first_chunk_seconds is None:
                    self.first_chunk_seconds = elapsed
            else:
                self.compute_seconds += elapsed
                self._timed_samples += tokens.shape[1]
            self.samples_generated += tokens.shape[1]
            return tokens

    def next_chunk(self) -> np.ndarray:
        """The next chunk of audio, float32 [voices, n] in [-1, 1] (see `next_tokens`)."""
        return mulaw.decode(self.next_tokens())

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

    def render(self, seconds: float, progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """Generates `seconds` of new audio (plus the seed audio first with include_prime).

        Args:
          seconds: length of the generated part.
          progress: called as progress(samples_done, samples_total) after each chunk.

        Returns:
          float32 [voices, n]; shorter if `stop()` was called meanwhile.
        """
        prime = self.prime_samples if self._settings.include_prime else 0
        total = prime + int(round(seconds * SAMPLE_RATE))
        pieces, done = [], 0
        for chunk in self.chunks(total):
            pieces.append(chunk)
            done += chunk.shape[1]
            if progress is not None:
                progress(done, total)
        if not pieces:
            return np.zeros((self.voices, 0), np.float32)
        return np.concatenate(pieces, axis=1)

    # ----- statistics ---------------------------------------------------------------------------

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
