"""Training step throughput, peak device memory and context-parallel scaling (issue 5).

Each configuration runs in its own subprocess (a clean device and a clean peak-memory
counter) through the real training step, `training.loop.make_train_step`: forward,
backward, AdamW, EMA, all jitted and donated.

    python -m benchmarks.training_throughput --suite throughput   # one GPU: 16k/128k/1M tokens
    python -m benchmarks.training_throughput --suite context      # 1M tokens over 1, 2, 4 GPUs
    python -m benchmarks.training_throughput --suite matmul       # default (TF32) against bf16 products
    python -m benchmarks.training_throughput --suite quick        # CPU smoke run

`--share-gpus` starts every row at once on GPUs shared between processes: the rows
compile side by side (minutes each for `paper`) and then take turns, behind a file lock,
for the warm-up and timed steps, so no two rows are ever timed at the same time.
"""

from __future__ import annotations

import argparse
import concurrent.futures as futures
import contextlib
import fcntl
import functools
import json
import os
import subprocess
import sys
import time

import jax
import numpy as np

from benchmarks.report import command_line, machine_line, write_section
from engine import model
from training.config import Matmul, ParallelConfig, TrainConfig
from training.doc_sections import markdown_table
from training.mesh import check_shapes, global_batch, make_mesh, put_replicated
from training.train_step import init_state, make_optimizer, make_train_step

ROW_FIELDS = ("preset", "batch", "length", "seq_shards", "remat", "matmul")
SUITES = {
    # Rows of ROW_FIELDS; batches chosen to fill an 80 GB GPU.
    # 1,048,320 = 3,276 x 320: the ~1M-token length that 1, 2 and 4 shards of both
    # presets' pooling products divide.
    "throughput": [
        ("realtime", 32, 16_000, 1, False, "default"),
        ("realtime", 8, 128_000, 1, False, "default"),
        ("realtime", 1, 1_048_320, 1, True, "default"),
        ("paper", 16, 16_000, 1, False, "default"),
        ("paper", 2, 128_000, 1, False, "default"),
    ],
    "context": [
        ("paper", 1, 1_048_320, 1, True, "default"),
        ("paper", 1, 1_048_320, 2, True, "default"),
        ("paper", 1, 1_048_320, 4, True, "default"),
    ],
    # The piano runs' shape (scripts/gpu/piano.sh), with each precision of ParallelConfig.matmul.
    "matmul": [
        (preset, 32, 64_000, 1, False, matmul)
        for preset in ("realtime", "realtime-2x")
        for matmul in ("default", "bf16")
    ],
    "quick": [
        ("tiny", 2, 4096, 1, False, "default"),
        ("tiny", 2, 4096, 1, False, "bf16"),
        ("tiny", 1, 8192, 1, True, "default"),
    ],
}


LOCK_ENV = "HARMONIC_BENCH_LOCK"


@contextlib.contextmanager
def timing_turn():
    """Holds the lock file named in $HARMONIC_BENCH_LOCK, if any: one row times at once."""
    path = os.environ.get(LOCK_ENV)
    if not path:
        yield
        return
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def run_one(preset: str, batch: int, length: int, seq_shards: int, remat: bool, matmul: Matmul, steps: int) -> dict:
    """Compiles the step, then (in its timing turn) runs one warm-up and `steps` timed
    steps; returns a result row."""
    # Dropout off: the step-0 loss is then the same function of the same weights and
    # tokens on every mesh, which checks the sharded step against the unsharded one.
    config = model.preset(preset).replace(dropout=0.0)
    train = TrainConfig(preset=preset, warmup_steps=10, dropout=0.0)
    mesh = make_mesh(1, seq_shards, jax.devices()[:seq_shards])
    check_shapes(config, mesh, batch, length)
    optimizer = make_optimizer(train)
    state = put_replicated(jax.device_get(init_state(config, train, optimizer)), mesh)
    step = make_train_step(
        config, train, mesh, optimizer, ParallelConfig(seq_shards=seq_shards, data_shards=1, remat=remat, matmul=matmul)
    )
    rng = np.random.default_rng(0)
    tokens = global_batch(mesh, lambda r, c: rng.integers(0, 256, (batch, length))[r, c], (batch, length), np.int32)
    mask = global_batch(mesh, lambda r, c: np.ones((batch, length), np.float32)[r, c], (batch, length), np.float32)
    start = time.perf_counter()
    step = step.lower(state, tokens, mask).compile()
    compile_s = time.perf_counter() - start
    times = []
    with timing_turn():
        state, metrics = step(state, tokens, mask)
        first_loss = float(metrics["loss"])
        for _ in range(steps):
            start = time.perf_counter()
            state, metrics = step(state, tokens, mask)
            jax.block_until_ready(metrics["loss"])
            times.append(time.perf_counter() - start)
    seconds = float(np.median(times))
    stats = jax.devices()[0].memory_stats() or {}
    return {
        **dict(zip(ROW_FIELDS, (preset, batch, length, seq_shards, remat, matmul), strict=True)),
        "step_s": seconds,
        "compile_s": compile_s,
        "loss": float(metrics["loss"]),
        "first_loss": first_loss,
        "tokens_per_s": batch * length / seconds,
        "peak_gib": stats.get("peak_bytes_in_use", 0) / 2**30,
        "device": jax.devices()[0].device_kind,
    }


def keep_result(results: dict[int, dict], index: int, done: futures.Future) -> None:
    results[index] = done.result()


def run_subprocess(row, steps: int, timeout: float, gpus: list[int] | None = None) -> dict:
    """Runs one row in a fresh process, on the GPUs `gpus` (all visible ones if None)."""
    args = [
        sys.executable,
        "-m",
        "benchmarks.training_throughput",
        "--one",
        json.dumps(row),
        "--steps",
        str(steps),
    ]
    env = dict(os.environ)
    if gpus is not None:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(gpu) for gpu in gpus)
    failed = dict(zip(ROW_FIELDS, row, strict=True))
    try:
        result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return failed | {"error": f"over {timeout:.0f} s"}
    for line in result.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
    error = (
        "out of memory"
        if "RESOURCE_EXHAUSTED" in result.stderr or "out of memory" in result.stderr.lower()
        else tail[0][:120]
    )
    return failed | {"error": error}


def run_shared(rows, steps: int, timeout: float, gpus: int, lock: str) -> list[dict]:
    """Starts every row at once, each on GPUs 0 .. seq_shards - 1 of `gpus` shared with
    the others (no preallocation), timed one at a time behind the lock file `lock`."""
    os.environ.setdefault(LOCK_ENV, lock)  # set by the caller: shared with another suite
    os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    with futures.ThreadPoolExecutor(len(rows)) as pool:
        jobs = [pool.submit(run_subprocess, row, steps, timeout, list(range(min(row[3], gpus)))) for row in rows]
        results = []
        for job in jobs:
            results.append(job.result())
            print(json.dumps(results[-1]), flush=True)
    return results


def run_rows(rows, steps: int, timeout: float, gpus: int) -> list[dict]:
    """Runs the rows, in order, concurrently where free GPUs allow (a row takes as many
    GPUs as its seq_shards); gpus = 0 runs them one after another on all devices."""
    if gpus == 0:
        return [run_subprocess(row, steps, timeout) for row in rows]
    results: dict[int, dict] = {}
    free = list(range(gpus))
    running: dict[futures.Future, list[int]] = {}
    with futures.ThreadPoolExecutor(gpus) as pool:
        for index, row in enumerate(rows):
            while len(free) < row[3]:
                done = next(futures.as_completed(running))
                free += running.pop(done)
            free.sort()  # neighbouring seq shards on neighbouring devices
            take, free = free[: row[3]], free[row[3] :]
            future = pool.submit(run_subprocess, row, steps, timeout, take)
            future.add_done_callback(functools.partial(keep_result, results, index))
            running[future] = take
        futures.wait(running)
    for index in sorted(results):
        print(json.dumps(results[index]), flush=True)
    return [results[index] for index in sorted(results)]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--suite", choices=sorted(SUITES), default="throughput")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds per configuration")
    parser.add_argument(
        "--gpus", type=int, default=0, help="run rows concurrently on this many GPUs (0: one at a time)"
    )
    parser.add_argument(
        "--share-gpus", action="store_true", help="start all rows at once on shared GPUs; time them one at a time"
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if args.one:
        print("RESULT " + json.dumps(run_one(*json.loads(args.one), steps=args.steps)), flush=True)
        return
    if args.share_gpus:
        lock = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"harmonic-bench-{os.getpid()}.lock")
        results = run_shared(SUITES[args.suite], args.steps, args.timeout, max(args.gpus, 1), lock)
    else:
        results = run_rows(SUITES[args.suite], args.steps, args.timeout, args.gpus)
    ok = [r for r in results if "error" not in r]
    device = ok[0]["device"] if ok else "unknown device"
    if args.suite == "context":
        base = {r["remat"]: r["step_s"] for r in ok if r["seq_shards"] == 1}
        base_loss = {r["remat"]: r["first_loss"] for r in ok if r["seq_shards"] == 1}
        header = [
            "preset",
            "tokens",
            "GPUs (seq shards)",
            "remat",
            "step s",
            "tokens/s total",
            "tokens/s per GPU",
            "scaling efficiency",
            "peak GiB (GPU 0)",
            "compile s",
            "step-0 loss",
            "vs 1 GPU",
        ]
        rows = [
            [
                r["preset"],
                f"{r['length']:,}",
                r["seq_shards"],
                r["remat"],
                "-" if "error" in r else f"{r['step_s']:.3f}",
                "-" if "error" in r else f"{r['tokens_per_s']:,.0f}",
                "-" if "error" in r else f"{r['tokens_per_s'] / r['seq_shards']:,.0f}",
                f"{base[r['remat']] / (r['seq_shards'] * r['step_s']):.0%}"
                if "error" not in r and r["remat"] in base
                else "-",
                "-" if "error" in r else f"{r['peak_gib']:.1f}",
                "-" if "error" in r else f"{r['compile_s']:.0f}",
                r.get("error") or f"{r['first_loss']:.6f}",
                f"{abs(r['first_loss'] - base_loss[r['remat']]):.1e}"
                if "error" not in r and r["remat"] in base_loss
                else "-",
            ]
            for r in results
        ]
    else:
        header = [
            "preset",
            "batch",
            "length",
            "remat",
            "matmul",
            "step s",
            "tokens/s per GPU",
            "peak GiB",
            "compile s",
            "loss after 1 + steps",
        ]
        rows = [
            [
                r["preset"],
                r["batch"],
                f"{r['length']:,}",
                r["remat"],
                r["matmul"],
                r.get("error") or f"{r['step_s']:.3f}",
                "-" if "error" in r else f"{r['tokens_per_s']:,.0f}",
                "-" if "error" in r else f"{r['peak_gib']:.1f}",
                "-" if "error" in r else f"{r['compile_s']:.0f}",
                "-" if "error" in r else f"{r['loss']:.4f}",
            ]
            for r in results
        ]
    table = markdown_table(header, rows)
    print(table)
    if not args.no_write:
        title = {
            "throughput": "Training throughput and memory",
            "context": "Context parallelism: one 1M-token sequence over several GPUs",
            "matmul": "Training throughput: default (TF32) against bf16 matrix products",
            "quick": "Training throughput (CPU smoke run)",
        }[args.suite]
        write_section(
            f"training_{args.suite}", f"{title} ({device})", command_line(), machine_line(device) + "\n\n" + table
        )


if __name__ == "__main__":
    main()
