"""What a model's takes sound like against the sampler's settings: the sample-quality
measures (training/audio_measures.py) of the same takes (model, seed, voices) at each
temperature and top-p, every voice pooled, from `--start` on (issue 15: at temperature 1 a
model can run away into a loud wash, below it into quiet decays and silence; top-p cuts
the distribution's tail instead of flattening or sharpening all of it).

    python -m benchmarks.sampling_settings MODEL [MODEL ...] --temperatures 1 0.985 0.97 --top-p 1 0.95
    python -m benchmarks.sampling_settings MODEL --seconds 2 --start 0 --no-doc   # a smoke run
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

from benchmarks.report import publish_results
from engine.checkpoint import load_model
from engine.generator import GenerationSettings, Generator
from engine.mulaw import SAMPLE_RATE
from training.audio_measures import HEADER, measure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="model checkpoint folders")
    parser.add_argument("--temperatures", type=float, nargs="+", default=[1.0])
    parser.add_argument("--top-p", type=float, nargs="+", default=[1.0], help="nucleus masses (default 1: off)")
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds per take (default 30)")
    parser.add_argument("--voices", type=int, default=4, help="voices per take (default 4)")
    parser.add_argument("--seed", type=int, default=11, help="random seed of every take (default 11)")
    parser.add_argument("--start", type=float, default=5.0, help="measure from this second on (default 5)")
    parser.add_argument("--no-doc", action="store_true", help="print the table only; do not write docs/results.md")
    args = parser.parse_args()
    if not 0 <= args.start < args.seconds:
        parser.error("--start must lie inside the take")
    rows = []
    for path in args.models:
        checkpoint = load_model(path)
        for temperature, top_p in itertools.product(args.temperatures, args.top_p):
            settings = GenerationSettings(
                temperature=temperature, top_p=top_p, random_seed=args.seed, voices=args.voices
            )
            take = Generator(checkpoint, settings).render(args.seconds)[:, int(args.start * SAMPLE_RATE) :]
            silent = [measure(voice).silent_fraction for voice in take]
            rows.append(
                [
                    Path(path).name,
                    f"{temperature:g}",
                    f"{top_p:g}",
                    *measure(take.ravel()).row(),
                    f"{min(silent):.0%}-{max(silent):.0%}",
                ]
            )
            print(" | ".join(rows[-1]), flush=True)
    note = (
        f"Takes of {args.voices} voices x {args.seconds:g} s per model and setting (seed {args.seed}, no "
        f"watchdog), measured from second {args.start:g} on with every voice pooled; *silent per voice*: the "
        'least and most silent voice. Measures as in docs/model.md, "Sample-quality measures".'
    )
    header = ["model", "temperature", "top-p", *HEADER, "silent per voice"]
    title = "Takes against the sampler's settings (issue 15)"
    publish_results("sampling_settings", title, note, header, rows, write=not args.no_doc)


if __name__ == "__main__":
    main()
