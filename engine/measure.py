"""Measuring generation: the chunked generator's speed, and a new process's time to first
audio with an empty and with a warm compile cache.

    checkpoint = random_checkpoint("realtime")          # random weights cost what trained ones do
    speed = measure_generator(checkpoint, voices=8, seconds=3.0)
    speed.rtf                                           # x real time, per voice
    cold, warm = startup_times("realtime")              # seconds, each in a fresh process

Used by `harmonic bench` (engine/commands/bench.py) and benchmarks/ (generation_cpu.py,
generation_gpu.py, fast_step.py). The startup times run `engine.startup_probe` in a child.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax

from engine import model
from engine.checkpoint import ModelCheckpoint
from engine.config import ModelConfig
from engine.generator import Backend, GenerationSettings, Generator
from engine.mulaw import SAMPLE_RATE
from engine.watchdog import WatchdogSettings

PROBE_MODULE = "engine.startup_probe"  # run with `python -m` (named, not imported: it imports this module)


@dataclasses.dataclass(frozen=True)
class GenerationSpeed:
    """What `measure_generator` measured.

    Attributes:
      first_chunk_s: seconds to the first chunk: compiling (or loading from the cache) and generating it.
      samples_per_s: samples of all voices generated per second, after the first chunk.
      rtf: real-time factor per voice (1.0: one voice exactly keeps up with 16 kHz).
      samples: samples generated per voice, after the first chunk.
    """

    first_chunk_s: float
    samples_per_s: float
    rtf: float
    samples: int


def random_checkpoint(preset: str, seed: int = 0, config: ModelConfig | None = None) -> ModelCheckpoint:
    """A `ModelCheckpoint` with random weights of a preset, or of `config` (named `preset`)."""
    config = config or model.preset(preset)
    return ModelCheckpoint(config, model.init_params(config, jax.random.key(seed)), {"name": preset}, Path(preset))


def measure_generator(
    checkpoint: ModelCheckpoint,
    voices: int,
    seconds: float,
    chunk_ms: float = 50.0,
    top_p: float = 1.0,
    backend: Backend | None = None,
    watchdog: WatchdogSettings | None = None,
) -> GenerationSpeed:
    """Runs the chunked generator for about `seconds` of wall time after its first chunk
    (and at least two chunks), on `backend` (None: the default), with `watchdog` if given."""
    settings = GenerationSettings(voices=voices, chunk_ms=chunk_ms, top_p=top_p, random_seed=1, watchdog=watchdog)
    gen = Generator(checkpoint, settings, backend)
    began = time.perf_counter()
    gen.next_tokens()
    first = time.perf_counter() - began
    began = time.perf_counter()
    samples = 0
    while True:
        samples += gen.next_tokens().shape[1]
        elapsed = time.perf_counter() - began
        if elapsed >= seconds and samples >= 2 * gen.chunk_samples:
            break
    rate = samples / elapsed
    return GenerationSpeed(first_chunk_s=first, samples_per_s=rate * voices, rtf=rate / SAMPLE_RATE, samples=samples)


def probe_startup(target: str, cache_dir: str, backend: str | None = None) -> float:
    """Seconds from spawning a fresh Python process to its first generated chunk
    (imports, model load, compile or cache load, first chunk), with `cache_dir` holding
    the persistent compile caches (JAX's and numba's); `backend` sets
    HARMONIC_STEP_BACKEND ("kernel", "kernel-float32" or "jax"; None: the default).

    Args:
      target: a preset name (random weights) or a checkpoint folder.
    """
    env = dict(os.environ, HARMONIC_COMPILE_CACHE=cache_dir, NUMBA_CACHE_DIR=str(Path(cache_dir) / "numba"))
    if backend is not None:
        env["HARMONIC_STEP_BACKEND"] = backend
    began = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", PROBE_MODULE, target], env=env, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - began
    if result.returncode != 0:
        raise RuntimeError(f"startup probe failed:\n{result.stderr[-2000:]}")
    return elapsed


def startup_times(target: str = "realtime", backend: str | None = None) -> tuple[float, float]:
    """(first start with empty compile caches, second start with the caches it filled)."""
    with tempfile.TemporaryDirectory(prefix="harmonic-cache-") as cache:
        return probe_startup(target, cache, backend), probe_startup(target, cache, backend)
