"""`harmonic ablate run`: train variants of one model at equal steps, then evaluate each.

Every variant is its own `harmonic train` process with its own run folder OUT/NAME
(config.json, metrics.csv, checkpoints/, train.log): the same data, training flags
(steps, batch, seed, ...) and base model overrides, plus the variant's own `--set`s.
Several variants can train at once on one GPU, one process each, with JAX's memory
preallocation off and XLA_PYTHON_CLIENT_MEM_FRACTION capping each process.

Equal steps: a run that a wall-time guard (`--max-minutes`) stopped early still has the
checkpoints it saved every `--save-every` steps. Every variant is evaluated at the
newest step that all of them saved, so the comparison is at equal steps even then; with
no guard hit that is the last step. (Use a constant learning-rate schedule, so that the
schedule at that step does not depend on the step target.)

Evaluation, at that step, from the EMA weights: `harmonic export` (test-split NLL in
bits per sample into the exported model's card; the exported model is small enough to
keep), and optionally `harmonic eval-samples` (FID, IS, mIS, AM of generated digits).
OUT/summary.json gathers per variant: parameters, steps, wall time, throughput,
stability (`training.metrics.stability`), valid/test NLL and sample metrics.
"""

from __future__ import annotations

import concurrent.futures as futures
import dataclasses
import datetime
import json
import os
import re
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from engine import model
from engine.checkpoint import read_meta, step_directories
from engine.cli import SELF_COMMAND
from engine.config import ModelConfig
from training.metrics import losses, read_metrics, stability

SUMMARY = "summary.json"
FORMAT = "harmonic-ablation/1"
RESERVED_TRAIN_FLAGS = ("--run", "--data", "--set", "--resume")
# Every saved step stays (unless the train flags say otherwise), so a common step exists.
KEEP_ALL_CHECKPOINTS = ("--keep-checkpoints", "100000")


@dataclasses.dataclass(frozen=True)
class Variant:
    """One model of the ablation: a name and its model overrides (KEY=VALUE, as `--set`)."""

    name: str
    overrides: tuple[str, ...] = ()

    @classmethod
    def parse(cls, words: list[str]) -> Variant:
        """["nopool", "pooling=", "widths=96", "blocks=3"] -> Variant("nopool", (...))."""
        name, *overrides = words
        if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
            raise ValueError(f"variant name {name!r}: use letters, digits, '_' and '-' only")
        for pair in overrides:
            if "=" not in pair:
                raise ValueError(f"variant {name}: expected KEY=VALUE model overrides, got {pair!r}")
        return cls(name, tuple(overrides))


@dataclasses.dataclass(frozen=True)
class AblationPlan:
    """Everything `harmonic ablate run` does.

    Attributes:
      data: the built data set every variant trains and is evaluated on.
      out: the ablation folder (new, or one without a summary).
      variants: the models to compare.
      base: model overrides shared by every variant (before the variant's own).
      train_args: `harmonic train` flags shared by every variant (steps, batch, seed...).
      parallel: processes at once (variants while training, jobs while evaluating).
      mem_fraction: XLA_PYTHON_CLIENT_MEM_FRACTION of each process (0: leave JAX's default).
      samples: variants to run `harmonic eval-samples` on.
      samples_args: flags for `harmonic eval-samples` (--n, --batch, ...).
      test_clips: test clips for the NLL (0: the whole split).
      eval_minutes: time limit of each evaluation process (0: none).
      command: how the ablation was started, for the summary and the report.
    """

    data: Path
    out: Path
    variants: tuple[Variant, ...]
    base: tuple[str, ...] = ()
    train_args: tuple[str, ...] = ()
    parallel: int = 1
    mem_fraction: float = 0.0
    samples: tuple[str, ...] = ()
    samples_args: tuple[str, ...] = ()
    test_clips: int = 0
    eval_minutes: float = 0.0
    command: str = ""

    def validate(self) -> None:
        names = [v.name for v in self.variants]
        if not names:
            raise ValueError("give at least one --variant")
        if len(set(names)) != len(names):
            raise ValueError(f"variant names repeat: {names}")
        if "models" in names:
            raise ValueError("'models' is taken by the exported models' folder; rename that variant")
        unknown = sorted(set(self.samples) - set(names))
        if unknown:
            raise ValueError(f"--samples names no variant: {unknown}")
        for flag in self.train_args:
            if flag.split("=", 1)[0] in RESERVED_TRAIN_FLAGS:
                raise ValueError(f"train flag {flag}: ablate sets --run, --data and --set itself and never resumes")
        if self.parallel < 1:
            raise ValueError("--parallel must be >= 1")
        if not 0.0 <= self.mem_fraction <= 1.0:
            raise ValueError("--mem-fraction must be in [0, 1]")
        if (self.out / SUMMARY).exists():
            raise ValueError(f"{self.out} already holds an ablation ({SUMMARY}); choose a new --out")

    def train_command(self, variant: Variant) -> list[str]:
        sets = [arg for pair in self.base + variant.overrides for arg in ("--set", pair)]
        return [
            *SELF_COMMAND,
            "train",
            "--data",
            str(self.data),
            "--run",
            str(self.out / variant.name),
            "--no-progress",
            *KEEP_ALL_CHECKPOINTS,
            *self.train_args,
            *sets,
        ]

    def environment(self) -> dict[str, str]:
        """The child processes' environment: on a shared GPU, a memory cap each and no
        preallocation (a process takes what it uses, up to the cap)."""
        env = dict(os.environ)
        if self.mem_fraction:
            env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
            env["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{self.mem_fraction:g}"
        return env


@dataclasses.dataclass
class Job:
    """One child process: its command, log file, and once run, exit code and wall time."""

    label: str
    command: list[str]
    log: Path
    timeout_s: float | None = None
    returncode: int | None = None
    wall_s: float = 0.0

    def run(self, env: dict[str, str]) -> Job:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        began = time.time()
        with open(self.log, "w") as log:
            try:
                self.returncode = subprocess.run(
                    self.command, stdout=log, stderr=subprocess.STDOUT, env=env, timeout=self.timeout_s
                ).returncode
            except subprocess.TimeoutExpired:
                self.returncode = -1
                log.write(f"\nablate: stopped after the time limit of {self.timeout_s:.0f} s\n")
        self.wall_s = time.time() - began
        return self


def run_jobs(jobs: list[Job], parallel: int, env: dict[str, str]) -> None:
    """Runs the jobs, `parallel` at a time, printing each one's start and end."""

    def one(job: Job) -> Job:
        print(f"ablate: start {job.label}", flush=True)
        job.run(env)
        status = "ok" if job.returncode == 0 else f"FAILED (exit {job.returncode}; see {job.log})"
        print(f"ablate: {job.label} {status} after {job.wall_s:.0f} s", flush=True)
        return job

    with futures.ThreadPoolExecutor(max_workers=parallel) as pool:
        list(pool.map(one, jobs))


def saved_steps(run_dir: Path) -> set[int]:
    """Steps of a run whose checkpoint was written completely."""
    directory = run_dir / "checkpoints"
    return {int(p.name) for p in step_directories(directory)} if directory.is_dir() else set()


def common_step(runs: list[Path]) -> int:
    """The newest step that every run saved (0 if there is none)."""
    shared = set.intersection(*(saved_steps(run) for run in runs)) if runs else set()
    return max(shared, default=0)


def parameter_count(model_config: dict) -> int:
    return model.count_params(model.param_shapes(ModelConfig.from_dict(model_config)))


def train_record(plan: AblationPlan, variant: Variant, job: Job, step: int) -> dict:
    """A variant's summary entry from its run folder, up to the evaluated `step`."""
    run_dir = plan.out / variant.name
    record: dict[str, Any] = {
        "name": variant.name,
        "overrides": list(variant.overrides),
        "run": variant.name,
        "train_returncode": job.returncode,
        "train_process_s": round(job.wall_s, 1),
    }
    if not (run_dir / "config.json").exists():
        return record
    run_config = json.loads((run_dir / "config.json").read_text())
    rows = read_metrics(run_dir / "metrics.csv") if (run_dir / "metrics.csv").exists() else []
    train_rows = [r for r in rows if r["split"] == "train" and int(r["step"]) <= step]
    rates = [float(r["tokens_per_s"]) for r in train_rows if r["tokens_per_s"]]
    record.update(
        model=run_config["model"],
        parameters=parameter_count(run_config["model"]),
        target_steps=run_config["train"]["steps"],
        steps_reached=max([s for s, _ in losses(rows, "train")], default=0),
        train_wall_s=float(train_rows[-1]["wall_s"]) if train_rows else None,
        tokens_per_s_median=statistics.median(rates) if rates else None,
        stability=stability(rows, step),
    )
    return record


def evaluation_jobs(plan: AblationPlan, names: list[str], step: int) -> list[Job]:
    """eval-samples of the chosen variants (the longest jobs, so first) and export (test
    NLL) of every named variant, all from the checkpoints of `step`."""
    timeout = plan.eval_minutes * 60 or None
    checkpoint = {name: str(plan.out / name / "checkpoints" / str(step)) for name in names}
    jobs = [
        Job(
            f"eval-samples {name}",
            [
                *SELF_COMMAND,
                "eval-samples",
                "--checkpoint",
                checkpoint[name],
                "--data",
                str(plan.data),
                "--json",
                str(plan.out / name / "samples.json"),
                *plan.samples_args,
            ],
            plan.out / name / "samples.log",
            timeout,
        )
        for name in names
        if name in plan.samples
    ]
    clips = ["--max-clips", str(plan.test_clips)] if plan.test_clips else []
    jobs += [
        Job(
            f"export {name}",
            [
                *SELF_COMMAND,
                "export",
                checkpoint[name],
                "--out",
                str(plan.out / "models" / name),
                "--name",
                name,
                *clips,
            ],
            plan.out / name / "export.log",
            timeout,
        )
        for name in names
    ]
    return jobs


def evaluation_record(plan: AblationPlan, name: str) -> dict:
    """Test NLL (from the exported model's card) and sample metrics of one variant."""
    record: dict[str, Any] = {}
    model_dir = plan.out / "models" / name
    if model_dir.is_dir():
        card = read_meta(model_dir)["card"]
        record.update(
            model_dir=f"models/{name}",
            test_nll_bits=card.get("test_nll_bits"),
            test_clips=card.get("test_clips"),
            valid_nll_bits=card.get("valid_nll_bits"),
            device=card.get("device"),
        )
    samples = plan.out / name / "samples.json"
    if samples.exists():
        record["samples"] = json.loads(samples.read_text())
    return record


def write_summary(plan: AblationPlan, summary: dict) -> Path:
    path = plan.out / SUMMARY
    path.write_text(json.dumps(summary, indent=2))
    return path


def run_ablation(plan: AblationPlan) -> dict:
    """Trains every variant, evaluates them at their common step; returns the summary
    (also written to OUT/summary.json, after training and again after evaluation)."""
    plan.validate()
    plan.out.mkdir(parents=True, exist_ok=True)
    began = time.time()
    env = plan.environment()
    jobs = {
        v.name: Job(f"train {v.name}", plan.train_command(v), plan.out / v.name / "train.log") for v in plan.variants
    }
    run_jobs(list(jobs.values()), plan.parallel, env)
    trained = [name for name, job in jobs.items() if job.returncode == 0]
    step = common_step([plan.out / name for name in trained])
    print(f"ablate: {len(trained)} of {len(jobs)} variants trained; evaluating at step {step}", flush=True)
    summary: dict[str, Any] = {
        "format": FORMAT,
        "command": plan.command,
        "started": datetime.datetime.fromtimestamp(began, datetime.UTC).isoformat(timespec="seconds"),
        "data": str(plan.data),
        "base": list(plan.base),
        "train_args": list(plan.train_args),
        "parallel": plan.parallel,
        "mem_fraction": plan.mem_fraction,
        "evaluated_step": step,
        "variants": [train_record(plan, v, jobs[v.name], step) for v in plan.variants],
    }
    summary["train_phase_s"] = round(time.time() - began, 1)
    write_summary(plan, summary)
    if step:
        run_jobs(evaluation_jobs(plan, trained, step), plan.parallel, env)
        for record in summary["variants"]:
            if record["name"] in trained:
                record.update(evaluation_record(plan, record["name"]))
    summary["total_s"] = round(time.time() - began, 1)
    write_summary(plan, summary)
    return summary
