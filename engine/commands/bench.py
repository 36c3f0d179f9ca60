"""`harmonic bench`: generation speed of each preset and shipped checkpoint, batch 1 and 8,
and the time to first audio with an empty and with a warm compile cache (measured by
`engine.measure`)."""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

from engine.config import PRESETS

if TYPE_CHECKING:  # imported where used at run time: jax and orbax are slow to import
    from engine.checkpoint import ModelCheckpoint


def targets(presets: list[str], include_shipped: bool = True) -> list[tuple[str, Callable[[], ModelCheckpoint]]]:
    """(label, loader) pairs: random-weight presets, then shipped checkpoints."""
    from engine.checkpoint import load_model, shipped_checkpoints
    from engine.measure import random_checkpoint

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
    # imported here: every command module is imported for `harmonic --help`, and these load jax
    from engine.compile_cache import enable_compile_cache
    from engine.measure import measure_generator, startup_times

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
                f"{label:<28} {batch:>5} {m.samples_per_s:>11,.0f} {m.rtf:>11.2f}x {m.first_chunk_s:>14.2f}",
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
