"""Batched stepwise generation on an accelerator: samples per second in total and per
stream at batch 1, 64 and 1024, for the `realtime` and `paper` presets (issue 5).

Uses the product's chunked generator (`engine.measure.measure_generator`); random
weights cost the same as trained ones.

    python -m benchmarks.generation_gpu            # on the GPU machine
    python -m benchmarks.generation_gpu --quick    # CPU smoke run, prints only
"""

from __future__ import annotations

import argparse

import jax

from benchmarks.report import command_line, machine_line, write_section
from engine.measure import measure_generator, random_checkpoint
from training.doc_sections import markdown_table


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seconds", type=float, default=8.0, help="wall time measured per row")
    args = parser.parse_args()
    presets, batches = (("tiny",), (1, 4)) if args.quick else (("realtime", "paper"), (1, 64, 1024))
    device = jax.devices()[0].device_kind
    rows = []
    for preset in presets:
        checkpoint = random_checkpoint(preset)
        for batch in batches:
            # Longer chunks amortise the per-chunk dispatch when many voices run at once.
            result = measure_generator(checkpoint, batch, 1.0 if args.quick else args.seconds, chunk_ms=250.0)
            rows.append(
                [
                    preset,
                    batch,
                    f"{result.samples_per_s:,.0f}",
                    f"{result.samples_per_s / batch:,.0f}",
                    f"{result.rtf:.2f}x",
                    f"{result.first_chunk_s:.1f}",
                ]
            )
            print(rows[-1], flush=True)
    table = markdown_table(
        [
            "preset",
            "streams",
            "samples/s total",
            "samples/s per stream",
            "real time per stream",
            "first chunk s (compile)",
        ],
        rows,
    )
    print(table)
    if not args.quick:
        write_section(
            "generation_gpu", f"Batched generation ({device})", command_line(), machine_line(device) + "\n\n" + table
        )


if __name__ == "__main__":
    main()
