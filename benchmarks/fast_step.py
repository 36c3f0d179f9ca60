"""The fused CPU kernel (engine.fast_step) side by side with the JAX step in one run, and the
kernel with the runaway watchdog on (engine.watchdog): batch 1 plain and top-p, with another
process keeping the other core busy, the `realtime-2x` preset, eight voices, and the time to
first audio of a new process. Then the shipped model with the kernel's matrices in bfloat16
(the default) and in float32: speed side by side, and the teacher-forced NLL of real piano
(test works of the piano set, rendered as `harmonic data build piano` renders them).

    python -m benchmarks.fast_step            # about 8 minutes on a quiet 2-core VM
    python -m benchmarks.fast_step --quick    # a smoke run; does not write the doc
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from platformdirs import user_cache_dir

from benchmarks.report import command_line, load_average, machine_line, write_section
from engine.checkpoint import CheckpointError, ModelCheckpoint, load_model
from engine.compile_cache import enable_compile_cache
from engine.fast_step import PackedModel
from engine.generator import Backend
from engine.measure import measure_generator, random_checkpoint, startup_times
from engine.model import START_TOKEN
from engine.mulaw import SAMPLE_RATE, encode
from engine.watchdog import WatchdogSettings
from training.data.manifest import split_of
from training.data.piano import (
    CLIP_SECONDS,
    TRAINING_PIANOS,
    Performance,
    choose_works,
    make_soundfonts,
    render,
    trim_silence,
)
from training.data.score_midi import read_index
from training.doc_sections import markdown_table
from training.loss import token_nll

SCORES = Path(__file__).resolve().parent.parent / "assets" / "scores" / "piano-midi.tar.xz"
# Unpacked to a fixed folder: a render's room noise is seeded by the MIDI file's path
# (`training.data.piano.render`), so the clips, and their NLL, are the same on every run.
SCORES_DIR = Path(tempfile.gettempdir()) / "harmonic-benchmark-scores"
SOUNDFONTS = Path(user_cache_dir("harmonic")) / "piano" / "soundfonts"  # where `harmonic data build piano` cuts them
PIANO_HOURS = 14.0  # the shipped model's build (`harmonic data build piano --max-hours 14`)


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


def median_rtfs(
    checkpoint: ModelCheckpoint,
    paths: list[tuple[str, Backend, bool]],
    voices: int,
    seconds: float,
    top_p: float,
    busy: bool,
    rounds: int,
) -> list[float]:
    """Each path's median real-time factor per voice over `rounds` measurements of `seconds`,
    after a short run that compiles it; the paths alternate within a round, so that a change
    of the machine's load hits all of them alike."""
    for path in paths:
        rtf(checkpoint, path, voices, 0.1, top_p, busy=False)
    per_round: list[list[float]] = [[] for _ in paths]
    for _ in range(rounds):
        for measured, path in zip(per_round, paths, strict=True):
            measured.append(rtf(checkpoint, path, voices, seconds, top_p, busy))
    return [statistics.median(measured) for measured in per_round]


# The kernel's two matrix formats: (name, backend).
PRECISIONS = [("bfloat16", Backend.KERNEL), ("float32", Backend.KERNEL_FLOAT32)]
PRECISION_HEADER = ["matrices", "matrix MB", "x real time, other core idle", "busy", "test NLL bits/sample"]


def piano_test_clips(count: int, midi_dir: Path, soundfonts: Path) -> np.ndarray:
    """int32 [count, CLIP_SECONDS * 16000] mu-law tokens: the first 8 s of each of the first
    `count` test-split works of the shipped model's build (works it never trained on), each
    rendered with its piano, velocity and room as the build renders it."""
    works = choose_works(read_index(midi_dir)["works"], 0, PIANO_HOURS)
    tests = [work for work in works if split_of(work["id"]) == "test"][:count]
    clips = []
    for work in tests:
        audio = render(midi_dir / work["file"], soundfonts, Performance.for_work(work["id"], TRAINING_PIANOS))
        clips.append(encode(trim_silence(audio))[: CLIP_SECONDS * SAMPLE_RATE])
    return np.stack(clips).astype(np.int32)


def teacher_forced_bits(packed: PackedModel, clips: np.ndarray, chunk: int = 4000) -> float:
    """Mean -log2 p(token) of clips int32 [V, T], each token predicted from those before it
    (START_TOKEN first, as training scores a clip): bits per sample. The clips run as voices
    of one kernel state, `chunk` samples per call (the logits of 8 clips of 8 s would be 1 GB)."""
    voices, steps = clips.shape
    targets = clips.T
    inputs = np.concatenate([np.full((1, voices), START_TOKEN, np.int32), targets[:-1]])
    state = packed.zero_state(voices)
    nats = 0.0
    for start in range(0, steps, chunk):
        logits = packed.feed(state, inputs[start : start + chunk])
        nll = token_nll(jnp.asarray(logits), jnp.asarray(targets[start : start + chunk]))
        nats += float(np.sum(np.asarray(nll, np.float64)))
    return nats / (voices * steps) / np.log(2.0)


def precision_rows(checkpoint: ModelCheckpoint, rounds: int, seconds: float, clips: int) -> tuple[list[list], str]:
    """Per matrix format: the kernel's matrix bytes, its batch-1 speed with the other core idle
    and busy (median of `rounds`, alternating the formats), and its NLL on `clips` test clips;
    and a line comparing bfloat16 with float32."""
    paths = [(name, backend, False) for name, backend in PRECISIONS]
    speeds = {busy: median_rtfs(checkpoint, paths, 1, seconds, 1.0, busy, rounds) for busy in (False, True)}
    if not (SCORES_DIR / "piano-midi").is_dir():
        with tarfile.open(SCORES) as archive:
            archive.extractall(SCORES_DIR, filter="data")
    tokens = piano_test_clips(clips, SCORES_DIR / "piano-midi", make_soundfonts(SOUNDFONTS, TRAINING_PIANOS))
    rows, bits = [], {}
    for index, (name, backend) in enumerate(PRECISIONS):
        packed = PackedModel.pack(checkpoint.params, checkpoint.config, bf16=backend is Backend.KERNEL)
        idle, loaded = speeds[False][index], speeds[True][index]
        bits[name] = teacher_forced_bits(packed, tokens)
        megabytes = packed.matrices.nbytes / 1e6
        rows.append([name, f"{megabytes:.1f}", f"{idle:.2f}x", f"{loaded:.2f}x", f"{bits[name]:.4f}"])
        print(markdown_table(PRECISION_HEADER, rows[-1:]).splitlines()[-1], flush=True)
    ratio = {busy: bf16 / float32 for busy, (bf16, float32) in speeds.items()}  # PRECISIONS: bfloat16 first
    summary = (
        f"bfloat16 against float32: {ratio[False]:.2f}x the speed with the other core idle, {ratio[True]:.2f}x busy; "
        f"NLL {bits['bfloat16'] - bits['float32']:+.4f} bits per sample."
    )
    print(summary)
    return rows, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny model, short runs; do not write docs/benchmarks.md")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per cell, alternating paths (default 3)")
    parser.add_argument(
        "--clips", type=int, default=8, help="8 s test clips for the NLL of each matrix format (default 8)"
    )
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
        jax_step, kernel, watched = median_rtfs(checkpoint, PATHS, voices, seconds, top_p, busy, args.rounds)
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

    shipped = checkpoints[main_preset] if args.quick else load_model(None)
    clips = 1 if args.quick else args.clips
    precision, precision_summary = precision_rows(shipped, args.rounds, seconds, clips)
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
            "`engine.fast_step`, the fused numba loop (the default, its matrices bfloat16). *kernel + watchdog*: "
            "the kernel with `--watchdog`: each sample's surprisal from the kernel and the statistics windows "
            "(random weights hiss at 7.3 bits a sample: it rolls each take back twice, gives up, and watches on). "
            f"Median of {args.rounds} rounds alternating the three paths, {seconds:g} s each; x real time is per "
            "voice. *busy*: another process spins at 100% of a core during the measurement; *idle*: the benchmark "
            "starts none (the load average shows what else ran).",
            markdown_table(header, rows),
            f"The kernel's matrices in bfloat16 (the default) and in float32 (`HARMONIC_STEP_BACKEND=kernel-float32`), "
            f"the shipped model (`{shipped.name}`), batch 1, top-p 1: median of {args.rounds} rounds alternating the "
            f"two, {seconds:g} s each, the other core idle, then busy. *matrix MB*: the matrices the kernel reads "
            f"(docs/model.md). *test NLL*: teacher-forced (the kernel's `feed`), on the first 8 s of each of the first "
            f"{clips} test works of the model's build (`harmonic data build piano --max-hours 14`: works it never "
            "trained on), rendered as the build renders them.",
            markdown_table(PRECISION_HEADER, precision),
            precision_summary,
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
