"""Faults under training, with real components only (no mocks, no patched failures):

- `harmonic train` killed with SIGKILL at many instants (before its first checkpoint,
  in the middle of checkpoint writes, at random) and resumed after each: the step only
  moves forward, the run finishes, and its curve is one continuous curve, the same as
  an uninterrupted run's.
- A real full disk (a small tmpfs) under `harmonic train`, `harmonic export`, `harmonic
  plot` and `harmonic data build folder`: one line saying so, exit 2, no traceback,
  nothing saved before lost, no half-written file left that looks finished.
- A file too short to give a clip is listed as skipped, with the reason.

Every command is a subprocess, as a user runs it; the training runs share one JAX
compilation cache, so only the first one compiles.
"""

from __future__ import annotations

import contextlib
import csv
import os
import random
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from engine.checkpoint import load_model
from engine.cli import SELF_COMMAND
from training.data.manifest import read_manifest

TRAIN = [
    "--preset",
    "tiny",
    "--set",
    "scan=sequential",
    "--batch-size",
    "2",
    "--seq-len",
    "256",
    "--lr",
    "5e-3",
    "--warmup-steps",
    "2",
    "--schedule",
    "constant",
    "--save-every",
    "1",
    "--eval-every",
    "-1",
    "--log-every",
    "1",
    "--no-progress",
]
STEPS = 24
PROGRESS_BAR = re.compile(r"\d+%\|")  # tqdm's bar, redrawn on stderr


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return dict(os.environ, JAX_PLATFORMS="cpu", JAX_COMPILATION_CACHE_DIR=str(tmp_path_factory.mktemp("jax-cache")))


@pytest.fixture(scope="module")
def audio(tmp_path_factory) -> Path:
    """Four 1.5 s tones and one 0.05 s file, too short for a clip."""
    src = tmp_path_factory.mktemp("audio")
    t = np.arange(24000) / 16000
    for i in range(4):
        soundfile.write(src / f"tone{i}.wav", 0.5 * np.sin(2 * np.pi * (220 + 110 * i) * t), 16000)
    soundfile.write(src / "short.wav", 0.5 * np.sin(2 * np.pi * 440 * t[:800]), 16000)
    return src


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, audio, env) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("data") / "tones"
    return out, harmonic(["data", "build", "folder", "--src", audio, "--out", out, "--clip-seconds", "0.5"], env)


def harmonic(args, env, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([*SELF_COMMAND, *map(str, args)], capture_output=True, text=True, env=env, timeout=timeout)


def assert_ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-5000:]
    return proc.stdout + proc.stderr


def assert_one_line_error(proc: subprocess.CompletedProcess, command: str, *words: str) -> str:
    """Exit 2, and stderr is one line (besides progress bars): `harmonic COMMAND: ...`
    holding `words`."""
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-5000:]
    lines = [line for line in re.split(r"[\r\n]+", proc.stderr) if line.strip() and not PROGRESS_BAR.search(line)]
    assert len(lines) == 1 and lines[0].startswith(f"harmonic {command}: "), proc.stderr[-5000:]
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def finished_steps(run: Path) -> list[int]:
    folder = run / "checkpoints"
    return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit()) if folder.is_dir() else []


def saving(run: Path) -> bool:
    """A checkpoint write is under way: the checkpoints folder holds something that is not
    a finished step (the writer's temporary directory)."""
    folder = run / "checkpoints"
    return folder.is_dir() and any(not p.name.isdigit() for p in folder.iterdir())


def train_curve(run: Path) -> list[tuple[int, float]]:
    with open(run / "metrics.csv", newline="") as f:
        return [(int(r["step"]), float(r["loss_bits"])) for r in csv.DictReader(f) if r["split"] == "train"]


def wait_for(condition, proc: subprocess.Popen, timeout: float = 400) -> bool:
    """Polls `condition` until it holds (True) or the process ends (False)."""
    deadline = time.time() + timeout
    while not condition():
        if proc.poll() is not None:
            return False
        assert time.time() < deadline, "the run made no progress within the time limit"
        time.sleep(0.002)
    return True


def test_kill_9_at_any_instant_then_resume_continues_the_same_curve(tmp_path, dataset, env):
    data, _ = dataset
    run = tmp_path / "run"
    command = [*SELF_COMMAND, "train", "--data", str(data), "--run", str(run), "--steps", str(STEPS), *TRAIN]
    rng = random.Random(20261129)
    # When each kill lands: before the first checkpoint, while a checkpoint is being
    # written (its temporary directory is there), and at random instants after the
    # resumed run has saved a new step (training, saving or deleting an old step).
    moments = ["before the first checkpoint", "mid-save", "mid-save", "mid-save", "random", "random", "random"]
    kept, kills = 0, 0
    for moment in moments:
        resume = ["--resume"] if kills else []
        proc = subprocess.Popen(command + resume, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        before = kept
        if moment == "before the first checkpoint":
            reached = wait_for(lambda: (run / "config.json").exists(), proc)
        else:
            reached = wait_for(lambda before=before: max(finished_steps(run), default=0) > before, proc)
            if reached and moment == "mid-save":
                reached = wait_for(lambda: saving(run), proc)
            elif reached:
                time.sleep(rng.uniform(0.0, 1.5))
                reached = proc.poll() is None
        if not reached:  # the run finished before this kill: the rounds so far are the test
            output = proc.communicate()[0]
            assert proc.returncode == 0, output[-4000:]
            break
        proc.send_signal(signal.SIGKILL)
        output = proc.communicate()[0]
        assert proc.returncode == -signal.SIGKILL, output[-4000:]
        kills += 1
        assert "Traceback" not in output and "damaged" not in output, output[-4000:]
        if resume:
            said = "no checkpoint yet: starting from step 0" if before == 0 else f"resumed from step {before}"
            assert said in output, output[-4000:]
        kept = max(finished_steps(run), default=0)
        assert kept >= before, f"killed {moment}: the newest checkpoint went back from {before} to {kept}"
    assert kills >= 5, f"only {kills} kills landed before the run finished"

    final = assert_ok(subprocess.run(command + ["--resume"], capture_output=True, text=True, env=env, timeout=600))
    assert re.search(rf"(resumed from step {kept}\b|no checkpoint yet)", final) and f"done: step {STEPS}" in final
    curve = train_curve(run)
    assert [s for s, _ in curve] == list(range(1, STEPS + 1)), curve  # one row per step, none repeated or missing

    # The same curve as a run that was never interrupted.
    straight = tmp_path / "straight"
    assert_ok(harmonic(["train", "--data", data, "--run", straight, "--steps", STEPS, *TRAIN, "--save-every", 0], env))
    np.testing.assert_allclose([loss for _, loss in curve], [loss for _, loss in train_curve(straight)], rtol=1e-4)


def test_full_disk_under_train_export_and_plot(tmp_path, dataset, env, tmpfs):
    data, _ = dataset
    # The disk fills while the run trains: once its first checkpoint is written, a ballast
    # file leaves 300 kB, less than a checkpoint of the tiny model (1.38-1.54 MB here from
    # step to step, so a disk sized to hold exactly one checkpoint was not a reliable test).
    disk = tmpfs(tmp_path / "disk", "size=20m")
    run = disk / "run"
    command = [*SELF_COMMAND, "train", "--data", str(data), "--run", str(run), "--steps", "100000", *TRAIN]
    train = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert wait_for(lambda: bool(finished_steps(run)), train), train.communicate()[1][-3000:]
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    with contextlib.suppress(OSError):  # ENOSPC: the run wrote its next step meanwhile; the disk is full anyway
        (disk / "ballast").write_bytes(bytes(free - 300_000))
    stdout, stderr = train.communicate(timeout=300)
    proc = subprocess.CompletedProcess(command, train.returncode, stdout, stderr)
    line = assert_one_line_error(proc, "train", "disk", "is full", "--resume")
    steps = finished_steps(run)
    assert steps and f"step {steps[-1]}, is intact" in line
    assert load_model(run / "checkpoints").card["steps"] == steps[-1]  # the last checkpoint still loads
    rows = train_curve(run)
    assert rows and rows[-1][0] >= steps[-1]

    # Space freed (the run moved to a roomy disk): --resume continues from that checkpoint.
    moved = tmp_path / "moved"
    shutil.copytree(run, moved)
    out = assert_ok(harmonic(["train", "--run", moved, "--resume", "--steps", steps[-1] + 1], env))
    assert f"resumed from step {steps[-1]}" in out

    # Export and plot onto a disk too small for them: one line, nothing left behind.
    tiny = tmpfs(tmp_path / "tiny", "size=16k")
    assert_one_line_error(harmonic(["export", moved, "--out", tiny / "model", "--no-test"], env), "export", "is full")
    assert_one_line_error(harmonic(["plot", moved, "--out", tiny / "loss.png"], env), "plot", "is full")
    assert list(tiny.iterdir()) == []


def test_full_disk_under_data_build(tmp_path, audio, env, tmpfs):
    disk = tmpfs(tmp_path / "disk", "size=64k")  # the set's train tokens alone are 96 kB
    out = disk / "tones"
    proc = harmonic(["data", "build", "folder", "--src", audio, "--out", out, "--clip-seconds", "0.5"], env)
    assert_one_line_error(proc, "data", "is full", "no data set was kept")
    assert not out.exists() or list(out.iterdir()) == []  # no manifest, no arrays, no temporaries


def test_a_file_too_short_for_a_clip_is_skipped_with_its_reason(dataset):
    data, proc = dataset
    out = assert_ok(proc)
    assert "skipped short.wav: shorter than 0.25 s (0.050 s)" in out
    manifest = read_manifest(data)
    assert manifest["skipped"] == [{"file": "short.wav", "error": "shorter than 0.25 s (0.050 s)"}]
    assert manifest["files"] == 4 and manifest["clips"] == 12
