"""Which model sizes still play live: the fused CPU kernel's speed at batch 1 for a preset and
variants of it (`harmonic train --set` overrides), side by side in one run, with the other
core idle and busy (issue 15: size the piano model up to what plays at 2x real time on a
2-core CPU). Random weights: the speed does not depend on the values at top-p 1.

    python -m benchmarks.model_size_cpu --preset realtime-2x --variants "widths=48,96,144,192,256"
    python -m benchmarks.model_size_cpu --preset tiny --variants "widths=24,16,32" --quick   # a smoke run
"""

from __future__ import annotations

import argparse
import statistics

from benchmarks.fast_step import rtf
from benchmarks.report import command_line, load_average, machine_line, write_section
from engine import model
from engine.compile_cache import enable_compile_cache
from engine.generator import Backend
from engine.measure import random_checkpoint
from training.doc_sections import markdown_table

KERNEL = ("kernel", Backend.KERNEL, False)  # benchmarks.fast_step's path: the fused kernel, no watchdog


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="realtime-2x", help="the model the variants change (default realtime-2x)")
    parser.add_argument(
        "--variants", nargs="+", default=[], metavar="SET", help="space-separated variants, each KEY=VALUE[;KEY=VALUE]"
    )
    parser.add_argument("--rounds", type=int, default=3, help="measurements per cell, alternating models (default 3)")
    parser.add_argument("--quick", action="store_true", help="short runs; do not write docs/benchmarks.md")
    args = parser.parse_args()
    enable_compile_cache()
    seconds = 0.5 if args.quick else 3.0
    base = model.preset(args.preset)
    try:
        configs = {args.preset: base} | {v: base.with_overrides(v.split(";")) for v in args.variants}
    except ValueError as error:
        parser.error(str(error))
    checkpoints = {name: random_checkpoint(name, config=config) for name, config in configs.items()}
    load_before = load_average()
    header = ["model", "parameters", "full-rate equivalent", "x real time, other core idle", "busy"]
    for checkpoint in checkpoints.values():
        rtf(checkpoint, KERNEL, 1, 0.1, 1.0, busy=False)  # compile before timing
    speeds: dict[tuple[str, bool], list[float]] = {}
    for busy in (False, True):
        for _ in range(args.rounds):  # alternate, so that load changes hit all alike
            for name, checkpoint in checkpoints.items():
                speeds.setdefault((name, busy), []).append(rtf(checkpoint, KERNEL, 1, seconds, 1.0, busy))
    rows = []
    for name, checkpoint in checkpoints.items():
        shapes = model.param_shapes(checkpoint.config)
        rows.append(
            [
                name if name == args.preset else f"{args.preset} + {name}",
                f"{model.count_params(shapes):,}",
                f"{model.full_rate_equivalent(shapes, checkpoint.config):,.0f}",
                f"{statistics.median(speeds[(name, False)]):.2f}x",
                f"{statistics.median(speeds[(name, True)]):.2f}x",
            ]
        )
    table = markdown_table(header, rows)
    print(table)
    if args.quick:
        return
    body = "\n\n".join(
        [
            machine_line("a 2-core CPU VM") + f" Load average before/after: {load_before} / {load_average()}.",
            "Batch 1 on the fused kernel (`engine.fast_step`, the default), random weights, top-p 1. Median of "
            f"{args.rounds} rounds of {seconds:g} s alternating the models. *busy*: another process spins at 100% of "
            "the other core. *full-rate equivalent*: the weights read per sample (`harmonic info`). Variants are "
            "`harmonic train --set` overrides of the preset.",
            table,
        ]
    )
    write_section("model_size_cpu", "Model size against live speed on the CPU", command_line(), body)


if __name__ == "__main__":
    main()
