"""The training loop from the command line: the loss goes down, a run killed with
kill -9 resumes from its last checkpoint and ends exactly where an uninterrupted run
ends, a damaged checkpoint is reported and the previous one used, and eval / plot /
export work on the result.

Every run is a subprocess (as a user runs it); they share a JAX compilation cache so
that only the first one compiles.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import jax
import ml_dtypes
import numpy as np
import orbax.checkpoint as ocp
import pytest

from engine import model
from engine.checkpoint import load_model
from engine.cli import SELF_COMMAND
from training.config import ParallelConfig, TrainConfig
from training.data.digits import build_digits
from training.mesh import make_mesh
from training.train_step import init_state, make_optimizer, make_train_step

TRAIN = [
    "--preset",
    "tiny",
    "--set",
    "scan=sequential",
    "--batch-size",
    "8",
    "--seq-len",
    "512",
    "--lr",
    "5e-3",
    "--warmup-steps",
    "5",
    "--schedule",
    "constant",
    "--save-every",
    "10",
    "--eval-every",
    "0",
    "--eval-clips",
    "8",
    "--eval-batch-size",
    "8",
    "--log-every",
    "5",
    "--no-progress",
]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    cache = tmp_path_factory.mktemp("jax-cache")
    return dict(os.environ, JAX_PLATFORMS="cpu", JAX_COMPILATION_CACHE_DIR=str(cache))


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "digits"
    build_digits(out, limit=40, progress=False)
    return out


def harmonic(args, env, timeout=600):
    proc = subprocess.run([*SELF_COMMAND, *map(str, args)], capture_output=True, text=True, env=env, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc.stdout + proc.stderr


def train_losses(run):
    with open(Path(run) / "metrics.csv") as f:
        return [(int(r["step"]), float(r["loss_bits"])) for r in csv.DictReader(f) if r["split"] == "train"]


def ema_params(run):
    return load_model(Path(run) / "checkpoints").params


def test_train_kill_resume_eval_export(tmp_path, digits, env):
    run = tmp_path / "run"
    # Inputs corrupted against clean targets (training/input_noise.py): the resumed run keeps
    # the option and draws the same corruption at each step as an uninterrupted run.
    train = [*TRAIN, "--input-noise", "0.05"]
    # 1. Start a long run and kill -9 it as soon as its first checkpoint is complete.
    proc = subprocess.Popen(
        [*SELF_COMMAND, "train", "--data", str(digits), "--run", str(run), "--steps", "1000", *train],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.time() + 500
    while not (run / "checkpoints" / "10" / "commit_success.txt").exists():
        assert proc.poll() is None, proc.stdout.read()[-4000:]
        assert time.time() < deadline, "no checkpoint within the time limit"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    saved = sorted(int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit())
    assert saved and saved[-1] < 40

    # 2. Resume to 40 steps: it continues from its last checkpoint.
    out = harmonic(["train", "--run", run, "--resume", "--steps", "40"], env)
    assert re.search(rf"resumed from step {saved[-1]}\b", out), out[-2000:]
    losses = train_losses(run)
    steps = [s for s, _ in losses]
    assert steps == list(range(5, 41, 5)), steps  # one continuous curve, no duplicates
    first, last = np.mean([loss for _, loss in losses[:2]]), np.mean([loss for _, loss in losses[-2:]])
    assert last < first - 0.3, losses  # the loss goes down
    assert "valid NLL" in out

    # 3. The same curve: an uninterrupted run of 40 steps ends with the same weights.
    straight = tmp_path / "straight"
    harmonic(["train", "--data", digits, "--run", straight, "--steps", "40", *train], env)
    assert json.loads((run / "config.json").read_text())["train"]["input_noise"] == 0.05
    a, b = ema_params(run), ema_params(straight)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose([loss for _, loss in train_losses(straight)], [loss for _, loss in losses], rtol=1e-4)

    # 4. Eval prints a finite test NLL.
    out = harmonic(["eval", "--checkpoint", run / "checkpoints", "--data", digits, "--split", "test"], env)
    bits = float(re.search(r"test NLL: ([0-9.]+) bits per sample", out).group(1))
    assert math.isfinite(bits) and 0 < bits < 8.5

    # 5. Plot and export.
    harmonic(["plot", run], env)
    assert (run / "loss.png").stat().st_size > 1000
    model_dir = tmp_path / "model"
    out = harmonic(["export", run, "--out", model_dir, "--name", "digits-tiny"], env)
    exported = load_model(model_dir)
    assert exported.card["name"] == "digits-tiny" and exported.card["steps"] == 40
    assert math.isfinite(exported.card["test_nll_bits"]) and math.isfinite(exported.card["valid_nll_bits"])
    assert exported.card["data"]["kind"] == "digits" and exported.card["wall_seconds"] > 0

    # 6. A new run starts from the exported weights (--init-from), stored in bfloat16 to
    # travel, with a fresh optimiser: after one step at a negligible learning rate its
    # float32 EMA is the exported model's, rounded to bfloat16.
    half_dir = tmp_path / "model-bf16"
    harmonic(["export", run, "--out", half_dir, "--no-test", "--bfloat16"], env)
    with ocp.StandardCheckpointer() as checkpointer:
        stored = checkpointer.metadata((half_dir / "params").absolute()).item_metadata
    assert {leaf.dtype for leaf in jax.tree.leaves(stored)} == {np.dtype(ml_dtypes.bfloat16)}
    started = tmp_path / "started"
    init = ["--init-from", half_dir, "--steps", "1", "--lr", "1e-9"]
    harmonic(["train", "--data", digits, "--run", started, *TRAIN, *init], env)
    for x, y in zip(jax.tree.leaves(ema_params(started)), jax.tree.leaves(exported.params), strict=True):
        assert x.dtype == np.float32
        np.testing.assert_allclose(x, y.astype(ml_dtypes.bfloat16).astype(np.float32), rtol=1e-5, atol=1e-7)
    assert str(half_dir) in (started / "config.json").read_text()  # the run says where it began
    wrong = subprocess.run(
        [*SELF_COMMAND, "train", "--data", digits, "--run", tmp_path / "wrong", *TRAIN, *init, "--preset", "realtime"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert wrong.returncode != 0 and "Traceback" not in wrong.stderr and "not the run's" in wrong.stderr

    # 7. A damaged newest checkpoint: resume says so and uses the previous one.
    newest = run / "checkpoints" / "40"
    for path in (newest / "train_state").rglob("*"):
        if path.is_file() and path.stat().st_size > 100:
            path.write_bytes(b"\0" * 17)
    out = harmonic(["train", "--run", run, "--resume", "--steps", "41"], env)
    assert "damaged" in out and "resumed from step 30" in out, out[-3000:]


def test_packed_run_state_continues_the_curve(tmp_path, digits, env):
    """A run packed after 20 steps, unpacked elsewhere and resumed to 40 lands on the
    curve of an uninterrupted run (bfloat16 moments and EMA difference: nearly exact)."""
    run, packed, moved = tmp_path / "run", tmp_path / "packed", tmp_path / "moved"
    harmonic(["train", "--data", digits, "--run", run, "--steps", "20", *TRAIN], env)
    harmonic(["run-state", "pack", run, "--out", packed, "--part-mb", "1"], env)
    parts = sorted(packed.glob("state.npz.*"))
    assert len(parts) >= 1 and all(p.stat().st_size <= 2**20 for p in parts)
    full = sum(p.stat().st_size for p in (run / "checkpoints" / "20" / "train_state").rglob("*") if p.is_file())
    assert sum(p.stat().st_size for p in parts) < 0.8 * full
    out = harmonic(["run-state", "unpack", packed, "--run", moved], env)
    assert "resumes from step 20" in out
    out = harmonic(["train", "--run", moved, "--resume", "--steps", "40"], env)
    assert "resumed from step 20" in out
    straight = tmp_path / "straight"
    harmonic(["train", "--data", digits, "--run", straight, "--steps", "40", *TRAIN], env)
    resumed, reference = train_losses(moved), train_losses(straight)
    assert [s for s, _ in resumed] == [s for s, _ in reference] == list(range(5, 41, 5))
    np.testing.assert_allclose([loss for _, loss in resumed], [loss for _, loss in reference], rtol=2e-3)


@pytest.mark.parametrize("matmul", ["default", "bf16"])
def test_matmul_precision_reaches_every_product_of_the_step(matmul):
    """--matmul bf16 gives every matrix product of the loss and its gradients bfloat16
    inputs with float32 accumulation; the default leaves all of them to XLA."""
    config = model.preset("tiny")
    train = TrainConfig(preset="tiny")
    mesh = make_mesh(1, 1, jax.devices()[:1])
    optimizer = make_optimizer(train)
    state = jax.eval_shape(lambda: init_state(config, train, optimizer))
    step = make_train_step(config, train, mesh, optimizer, ParallelConfig(matmul=matmul))
    batch = jax.ShapeDtypeStruct((2, 4 * config.total_pooling), np.int32)
    mask = jax.ShapeDtypeStruct(batch.shape, np.float32)
    products = [line for line in step.lower(state, batch, mask).as_text().splitlines() if "dot_general" in line]
    in_bf16 = [line for line in products if "lhs_precision_type = bf16" in line and "accumulation_type = f32" in line]
    assert len(products) > 10
    assert len(in_bf16) == (len(products) if matmul == "bf16" else 0)
