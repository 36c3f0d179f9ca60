"""The fused CPU kernel (engine.fast_step) side by side with the JAX step in one run, and the
kernel with the runaway watchdog on (engine.watchdog): batch 1 plain and top-p, with another
process keeping the other core busy, the `realtime-2x` preset, eight voices, and the time to
first audio of a new process.

    python -m benchmarks.fast_step            # about 5 minutes on a quiet 2-core VM
    python -m benchmarks.fast_step --quick    # a smoke run; does not write the doc
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys

from benchmarks.report import command_line, load_average, machine_line, write_section
from engine.checkpoint import CheckpointError, ModelCheckpoint, load_model
from engine.compile_cache import enable_compile_cache
from engine.generator import Backend
from engine.measure import measure_generator, random_checkpoint, startup_times
from engine.watchdog import WatchdogSettings
from training.doc_sections import markdown_table


@contextlib.contextmanager
def busy_core():
    """Another process spinning at 100% of a core while the block runs."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        spinner.kill()
        spinner.wait()


# The paths measured: (name, backend, with the watchdog).
PATHS = [
    ("JAX step", Backend.JAX, False),
    ("kernel", Backend.KERNEL, False),
    ("kernel + watchdog", Backend.KERNEL, True),
]


def rtf(
    checkpoint: ModelCheckpoint, path: tuple[str, Backend, bool], voices: int, seconds: float, top_p: float, busy: bool
) -> float:
    """Real-time factor per voice of one measurement."""
    _, backend, watched = path
    watchdog = WatchdogSettings() if watched else None
    with busy_core() if busy else contextlib.nullcontext():
        return measure_generator(checkpoint, voices, seconds, top_p=top_p, backend=backend, watchdog=watchdog).rtf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny model, short runs; do not write docs/benchmarks.md")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per cell, alternating paths (default 3)")
    args = parser.parse_args()
    enable_compile_cache()
    seconds = 0.5 if args.quick else 2.0
    main_preset, large_preset = ("tiny", "tiny") if args.quick else ("realtime", "realtime-2x")
    load_before = load_average()
    header = ["model", "voices", "sampling", "other core", *(f"{name} x real time" for name, _, _ in PATHS)]
    header += ["kernel / JAX", "watchdog / kernel"]
    cases = [
        (main_preset, 1, 1.0, False),
        (main_preset, 1, 0.95, False),
        (main_preset, 1, 1.0, True),
        (main_preset, 1, 0.95, True),
        (large_preset, 1, 1.0, False),
        (large_preset, 1, 1.0, True),
        (main_preset, 8, 1.0, False),
    ]
    checkpoints: dict[str, ModelCheckpoint] = {}
    rows = []
    for name, voices, top_p, busy in cases:
        if name not in checkpoints:  # one random model per preset, built once
            checkpoints[name] = random_checkpoint(name)
        checkpoint = checkpoints[name]
        for path in PATHS:  # warm every path (compile) before timing
            rtf(checkpoint, path, voices, 0.1, top_p, busy=False)
        per_round: dict[str, list[float]] = {path[0]: [] for path in PATHS}
        for _ in range(args.rounds):  # alternate, so that load changes hit all alike
            for path in PATHS:
                per_round[path[0]].append(rtf(checkpoint, path, voices, seconds, top_p, busy))
        jax_step, kernel, watched = (statistics.median(per_round[path[0]]) for path in PATHS)
        rows.append(
            [
                name,
                voices,
                "plain" if top_p == 1.0 else f"top-p {top_p}",
                "busy" if busy else "idle",
                f"{jax_step:.2f}x",
                f"{kernel:.2f}x",
                f"{watched:.2f}x",
                f"{kernel / jax_step:.1f}x",
                f"{watched / kernel:.2f}",
            ]
        )
        print(markdown_table(header, rows[-1:]).splitlines()[-1], flush=True)

    try:
        startup_target, startup_name = str(load_model(None).path), "the shipped default checkpoint"
    except CheckpointError:
        startup_target, startup_name = main_preset, f"random `{main_preset}` weights"
    startup_header = ["path", "empty caches (cold) s", "warm caches s"]
    startup_rows = []
    for backend in (Backend.JAX, Backend.KERNEL):
        cold, warm = startup_times(startup_target, backend.value)
        startup_rows.append([backend.value, f"{cold:.1f}", f"{warm:.1f}"])
        print(markdown_table(startup_header, startup_rows[-1:]).splitlines()[-1], flush=True)
    load_after = load_average()
    body = "\n\n".join(
        [
            machine_line(f"a {os.cpu_count()}-core CPU VM")
            + f" Load average before/after: {load_before} / {load_after}.",
            "Random weights of each preset (speed does not depend on the values, except top-p's, which does less work "
            "on a trained model's peaked distributions). *JAX step*: `engine.generator.generate_chunk`, one compiled "
            "`lax.scan` of `engine.model.step` per 50 ms chunk (`HARMONIC_STEP_BACKEND=jax`). *kernel*: "
            "`engine.fast_step`, the fused numba loop (the default). *kernel + watchdog*: the kernel with "
            "`--watchdog`: each sample's surprisal from the kernel and the statistics windows (random weights "
            "hiss at 7.3 bits a sample: it rolls each take back twice, gives up, and watches on). Median of "
            f"{args.rounds} rounds alternating the three paths, {seconds:g} s each; x real time is per voice. *busy*: "
            "another process spins at 100% of a core during the measurement; *idle*: the benchmark starts none "
            "(the load average shows what else ran).",
            markdown_table(header, rows),
            f"Time to first audio of a new process: Python start, imports, loading {startup_name}, compiling or "
            "loading the programs from the caches (JAX's and numba's, both emptied for the cold start), and the first "
            "50 ms chunk of the generator, the path `harmonic play` and the app take before the sound card starts "
            "(`engine.measure.probe_startup`).",
            markdown_table(startup_header, startup_rows),
        ]
    )
    if not args.quick:
        write_section("fast_step", "Stepwise generation on the CPU: fused kernel vs JAX step", command_line(), body)
        print("wrote docs/benchmarks.md section fast_step")


if __name__ == "__main__":
    main()
