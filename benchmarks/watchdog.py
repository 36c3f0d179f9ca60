"""The runaway watchdog's effect on takes: the sample-quality table (training/audio_measures.py)
of the same takes (model, seed, voices) rendered without and with `--watchdog`.

    python -m benchmarks.watchdog MODEL [MODEL ...]           # 2 voices x 60 s each; writes docs/results.md
    python -m benchmarks.watchdog MODEL --seconds 5 --no-doc  # a smoke run
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from benchmarks.report import publish_results
from engine.checkpoint import load_model
from engine.generator import GenerationSettings, Generator
from engine.watchdog import WatchdogSettings
from training.audio_measures import HEADER, measure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="model checkpoint folders")
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds per take (default 60)")
    parser.add_argument("--voices", type=int, default=2, help="voices per take (default 2)")
    parser.add_argument("--seed", type=int, default=3, help="random seed of every take (default 3)")
    parser.add_argument("--no-doc", action="store_true", help="print the table only; do not write docs/results.md")
    args = parser.parse_args()
    header = ["model", "watchdog", "voice", *HEADER, "rollbacks", "given up", "compute (s)"]
    rows = []
    for path in args.models:
        checkpoint = load_model(path)
        for watchdog in (None, WatchdogSettings()):
            settings = GenerationSettings(random_seed=args.seed, voices=args.voices, watchdog=watchdog)
            generator = Generator(checkpoint, settings)
            began = time.perf_counter()
            take = generator.render(args.seconds)
            elapsed = time.perf_counter() - began
            for voice, audio in enumerate(take):
                rollbacks = sum(rollback.voice == voice for rollback in generator.rollbacks)
                given_up = sum(f"voice {voice + 1} " in notice for notice in generator.watchdog_notices)
                row = [Path(path).name, "on" if watchdog else "off", voice + 1]
                row += [*measure(audio).row(), rollbacks if watchdog else "", given_up if watchdog else ""]
                rows.append([*row, f"{elapsed:.0f}"])
                print(" | ".join(str(cell) for cell in rows[-1]), flush=True)
    note = (
        f"Each pair of rows is one take ({args.voices} voices x {args.seconds:g} s, seed {args.seed}, temperature "
        "1, the kernel backend) rendered without and with the watchdog's default settings "
        "(`engine.watchdog.WatchdogSettings`); with it, the rolled-back audio is not in the take. *compute*: "
        "seconds to render the take, rollbacks' discarded audio included. *given up*: runaways the watchdog "
        "stopped retrying (it then lets the voice play on)."
    )
    publish_results("watchdog", "The runaway watchdog (issue 15)", note, header, rows, write=not args.no_doc)


if __name__ == "__main__":
    main()
