"""`harmonic bench`: generation speed of each preset and shipped checkpoint, batch 1 and 8,
and the time to first audio with an empty and with a warm compile cache.

The measuring functions are reused by `benchmarks/generation_cpu.py`.
"""

from __future__ import annotations

import argparse
import functools
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from engine.mulaw import SAMPLE_RATE

if TYPE_CHECKING:  # imported where used at run time: jax and orbax are slow to import
    from engine.checkpoint import ModelCheckpoint


def random_checkpoint(preset: str, seed: int = 0) -> ModelCheckpoint:
    """A `ModelCheckpoint` with random weights of a preset."""
    import jax

    from engine import model
    from engine.checkpoint import ModelCheckpoint

    config = model.preset(preset)
    return ModelCheckpoint(config, model.init_params(config, jax.random.key(seed)), {"name": preset}, Path(preset))


def measure_generator(
    checkpoint, voices: int, seconds: float, chunk_ms: float = 50.0, top_p: float = 1.0, backend=None
) -> dict:
    """Runs the chunked generator for about `seconds` of wall time after its first chunk,
    on `backend` (an `engine.generator.Backend`; None for the default).

    Returns:
      {"first_chunk_s": compile (or cache load) + first chunk, "samples_per_s": samples of
       all voices per second, "rtf": real-time factor per voice, "samples": per voice}.
    """
    from engine.generator import GenerationSettings, Generator

    gen = Generator(
        checkpoint, GenerationSettings(voices=voices, chunk_ms=chunk_ms, top_p=top_p, random_seed=1), backend
    )
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
    return {"first_chunk_s": first, "samples_per_s": rate * voices, "rtf": rate / SAMPLE_RATE, "samples": samples}


def probe_startup(target: str, cache_dir: str, backend: str | None = None) -> float:
    """Seconds from spawning a fresh Python process to its first generated chunk
    (imports, model load, compile or cache load, first chunk), with `cache_dir` holding
    the persistent compile caches (JAX's and numba's); `backend` sets
    HARMONIC_STEP_BACKEND ("kernel" or "jax"; None: the default)."""
    env = dict(os.environ, HARMONIC_COMPILE_CACHE=cache_dir, NUMBA_CACHE_DIR=str(Path(cache_dir) / "numba"))
    if backend is not None:
        env["HARMONIC_STEP_BACKEND"] = backend
    began = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "engine.commands.bench", "--probe", target],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - began
    if result.returncode != 0:
        raise RuntimeError(f"startup probe failed:\n{result.stderr[-2000:]}")
    return elapsed


def startup_times(target: str = "realtime", backend: str | None = None) -> tuple[float, float]:
    """(first start with empty compile caches, second start with the caches it filled)."""
    with tempfile.TemporaryDirectory(prefix="harmonic-cache-") as cache:
        return probe_startup(target, cache, backend), probe_startup(target, cache, backend)


def _probe_main(target: str) -> None:
    from engine.checkpoint import load_model
    from engine.compile_cache import enable_compile_cache
    from engine.generator import GenerationSettings, Generator

    enable_compile_cache()
    from engine import model

    checkpoint = random_checkpoint(target) if target in model.PRESETS else load_model(target)
    gen = Generator(checkpoint, GenerationSettings(random_seed=1))
    gen.next_chunk()


def targets(presets: list[str], include_shipped: bool = True) -> list[tuple[str, Callable[[], ModelCheckpoint]]]:
    """(label, loader) pairs: random-weight presets, then shipped checkpoints."""
    from engine.checkpoint import load_model, shipped_checkpoints

    out: list[tuple[str, Callable[[], ModelCheckpoint]]] = [
        (f"preset {name}", functools.partial(random_checkpoint, name)) for name in presets
    ]
    if include_shipped:
        out += [(f"shipped {path.name}", functools.partial(load_model, path)) for path in shipped_checkpoints()]
    return out


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("bench", help="generation speed table: samples/s and real-time factor, batch 1 and 8")
    parser.add_argument(
        "--presets", default="tiny,realtime,paper", help="comma-separated presets (default tiny,realtime,paper)"
    )
    parser.add_argument("--batches", default="1,8", help="comma-separated batch sizes (default 1,8)")
    parser.add_argument(
        "--seconds", type=float, default=3.0, help="wall seconds per measurement (default 3; paper gets a third)"
    )
    parser.add_argument("--no-startup", action="store_true", help="skip the first/cached start measurement")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from engine.compile_cache import enable_compile_cache
    from engine.config import PRESETS

    enable_compile_cache()
    presets = [p for p in args.presets.split(",") if p]
    for name in presets:
        if name not in PRESETS:
            raise SystemExit(f"harmonic bench: unknown preset {name!r} ({', '.join(PRESETS)})")
    batches = [int(b) for b in args.batches.split(",")]
    print(f"{'model':<28} {'batch':>5} {'samples/s':>11} {'x real time':>12} {'first chunk s':>14}")
    for label, load in targets(presets):
        checkpoint = load()
        for batch in batches:
            seconds = args.seconds / 3 if "paper" in label else args.seconds
            m = measure_generator(checkpoint, batch, seconds)
            print(
                f"{label:<28} {batch:>5} {m['samples_per_s']:>11,.0f} {m['rtf']:>11.2f}x {m['first_chunk_s']:>14.2f}",
                flush=True,
            )
    print(
        "(samples/s counts all voices; x real time is per voice; "
        "first chunk includes compiling or loading from the cache)"
    )
    if not args.no_startup:
        first, cached = startup_times("realtime")
        print(
            f"time to first audio, new process, realtime preset: {first:.1f} s with an empty compile cache, "
            f"{cached:.1f} s cached"
        )
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--probe":
        _probe_main(sys.argv[2])
