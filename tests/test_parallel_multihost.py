"""Multi-host context parallelism: two processes on localhost joined with
jax.distributed (CPU collectives), the sequence split across them (--seq-shards 2, one
device each), train a few steps and end with the same losses and weights as one process.
Each process reads only its own half of every crop."""

from __future__ import annotations

import csv
import os
import socket
import subprocess
from pathlib import Path

import jax
import numpy as np

from engine.checkpoint import load_model
from engine.cli import SELF_COMMAND
from training.data.digits import build_digits


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metrics(run):
    with open(Path(run) / "metrics.csv") as f:
        return [r for r in csv.DictReader(f) if r["split"] == "train"]


def test_two_processes_match_one(tmp_path):
    data = tmp_path / "digits"
    build_digits(data, limit=30, progress=False)
    env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_COMPILATION_CACHE_DIR=str(tmp_path / "jax-cache"))
    env.pop("XLA_FLAGS", None)  # one CPU device per process
    # A two-level model (pooling 4, so the halo and the CG-LRU fold both cross the
    # process boundary) keeps the three compilations short on a 2-core CI machine.
    model = [
        "--set",
        "widths=8,16",
        "--set",
        "pooling=4",
        "--set",
        "blocks=1,1",
        "--set",
        "gate_blocks=4",
        "--set",
        "pool_groups=2",
        "--set",
        "scan=sequential",
    ]
    common = [
        "train",
        "--data",
        str(data),
        "--preset",
        "tiny",
        *model,
        "--steps",
        "3",
        "--batch-size",
        "2",
        "--seq-len",
        "256",
        "--eval-every",
        "-1",
        "--warmup-steps",
        "1",
        "--log-every",
        "1",
        "--no-progress",
    ]
    port = free_port()
    procs = [
        subprocess.Popen(
            [*SELF_COMMAND, *common, "--run", str(tmp_path / "one")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    ]
    for pid in range(2):
        procs.append(
            subprocess.Popen(
                [
                    *SELF_COMMAND,
                    *common,
                    "--run",
                    str(tmp_path / "two"),
                    "--seq-shards",
                    "2",
                    "--coordinator",
                    f"127.0.0.1:{port}",
                    "--num-processes",
                    "2",
                    "--process-id",
                    str(pid),
                ],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    outputs = [p.communicate(timeout=800)[0] for p in procs]
    for proc, out in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, out[-5000:]
    assert "2 x cpu (cpu, 2 process(es))" in outputs[1]
    one, two = metrics(tmp_path / "one"), metrics(tmp_path / "two")
    assert [r["step"] for r in one] == [r["step"] for r in two] == ["1", "2", "3"]
    for a, b in zip(one, two, strict=True):
        assert abs(float(a["loss_bits"]) - float(b["loss_bits"])) < 1e-5 * float(a["loss_bits"])
        assert abs(float(a["grad_norm"]) - float(b["grad_norm"])) < 1e-4 * float(a["grad_norm"])
    pa, pb = load_model(tmp_path / "one").params, load_model(tmp_path / "two").params
    for x, y in zip(jax.tree.leaves(pa), jax.tree.leaves(pb), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6)
