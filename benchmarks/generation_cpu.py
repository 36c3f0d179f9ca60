"""Stepwise generation speed on the CPU: the chunked JAX generator (one compiled lax.scan
per chunk, engine.generator's JAX backend; benchmarks/fast_step.py compares it with the
default, the fused kernel) side by side with the naive loop (Python calls one jitted
sample+step function per sample), in the same run, alternating rounds; plus the time to
first audio of a new process with an empty and with a warm compile cache.

    python -m benchmarks.generation_cpu            # about 5 minutes on a 2-core VM
    python -m benchmarks.generation_cpu --quick    # a smoke run; does not write the doc
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.report import command_line, load_average, machine_line, write_section
from engine import model, sampling
from engine.compile_cache import enable_compile_cache
from engine.generator import Backend
from engine.measure import measure_generator, random_checkpoint, startup_times
from engine.mulaw import SAMPLE_RATE
from training.doc_sections import markdown_table


def naive_loop_rate(checkpoint, voices: int, steps: int) -> float:
    """Samples per second (per voice) of a Python loop over a jitted sample+step."""
    config, params = checkpoint.config, jax.device_put(checkpoint.params)

    @jax.jit
    def one(state, logits, gumbel):
        token = sampling.sample(logits, gumbel, 1.0, 1.0)
        logits, state = model.step(params, config, state, token)
        return state, logits, token

    noise = np.asarray(sampling.chunk_noise(np.uint32(1), np.int32(0), -(-steps // sampling.NOISE_BLOCK), voices))
    state = model.init_state(params, config, voices)
    logits, state = model.step(params, config, state, jnp.full((voices,), model.START_TOKEN, jnp.int32))
    jax.block_until_ready(one(state, logits, noise[0]))  # compile
    began = time.perf_counter()
    for t in range(steps):
        state, logits, token = one(state, logits, noise[t])
    jax.block_until_ready(token)
    return steps / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs, tiny only; do not write docs/benchmarks.md")
    parser.add_argument("--rounds", type=int, default=3, help="alternating scan/naive rounds per row (default 3)")
    args = parser.parse_args()
    enable_compile_cache()
    seconds = 0.5 if args.quick else 2.0
    naive_steps = 200 if args.quick else 800
    rows_spec = (
        [("tiny", 1), ("tiny", 8)] if args.quick else [("realtime", 1), ("realtime", 8), ("tiny", 1), ("tiny", 8)]
    )
    load_before = load_average()

    header = [
        "model",
        "batch",
        "scan samples/s",
        "scan x real time",
        "naive samples/s",
        "naive x real time",
        "scan / naive",
    ]
    rows = []
    for name, batch in rows_spec:
        checkpoint = random_checkpoint(name)
        scan_rates, naive_rates = [], []
        for _ in range(args.rounds):
            scan_rates.append(measure_generator(checkpoint, batch, seconds, backend=Backend.JAX).rtf * SAMPLE_RATE)
            naive_rates.append(naive_loop_rate(checkpoint, batch, naive_steps))
        scan, naive = statistics.median(scan_rates), statistics.median(naive_rates)
        rows.append(
            [
                name,
                batch,
                f"{scan * batch:,.0f}",
                f"{scan / SAMPLE_RATE:.2f}x",
                f"{naive * batch:,.0f}",
                f"{naive / SAMPLE_RATE:.3f}x",
                f"{scan / naive:.1f}x",
            ]
        )
        print(markdown_table(header, rows[-1:]).splitlines()[-1], flush=True)

    extra_header = ["model", "batch", "sampling", "samples/s", "x real time"]
    extra = []
    if not args.quick:
        realtime = random_checkpoint("realtime")
        m = measure_generator(realtime, 1, seconds, top_p=0.95, backend=Backend.JAX)
        extra.append(["realtime", 1, "top-p 0.95", f"{m.samples_per_s:,.0f}", f"{m.rtf:.2f}x"])
        paper = random_checkpoint("paper")
        for batch in (1, 8):
            m = measure_generator(paper, batch, seconds / 2, backend=Backend.JAX)
            extra.append(["paper", batch, "plain", f"{m.samples_per_s:,.0f}", f"{m.rtf:.2f}x"])
        for row in extra:
            print(markdown_table(extra_header, [row]).splitlines()[-1], flush=True)
    target = "tiny" if args.quick else "realtime"
    first, cached = startup_times(target, Backend.JAX.value)
    startup = (
        f"Time to first audio of a new process (`{target}`, batch 1: Python start, imports, weights, "
        f"compiling or loading the programs, first 50 ms chunk): **{first:.1f} s** with an empty compile cache, "
        f"**{cached:.1f} s** with the cache the first start filled."
    )
    print(startup)
    load_after = load_average()
    body = "\n\n".join(
        [
            machine_line(f"a {os.cpu_count()}-core CPU VM")
            + f" Load average before/after: {load_before} / {load_after}"
            " (other engineers' jobs shared the 2 cores; absolute numbers move with that, the side-by-side ratios "
            "less).",
            "Random weights of each preset (speed does not depend on the values). *scan*: `engine.generator`, one "
            "compiled `lax.scan` per 50 ms chunk with the Gumbel noise drawn inside it. *naive*: a Python loop calling "
            "one jitted "
            "sample+step function per sample, with the same noise. Median of "
            f"{args.rounds} alternating rounds; samples/s counts all voices, x real time is per voice.",
            markdown_table(header, rows),
            markdown_table(extra_header, extra) if extra else "",
            startup,
        ]
    )
    if not args.quick:
        write_section(
            "generation_cpu", "Stepwise generation on the CPU: chunked scan vs naive loop", command_line(), body
        )
        print("wrote docs/benchmarks.md section generation_cpu")


if __name__ == "__main__":
    main()
