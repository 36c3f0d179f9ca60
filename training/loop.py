"""The training loop (docs/spec.md §6) over a ("data", "seq") mesh (docs/spec.md §7).

    summary = train("runs/piano", run_config, resume=True)

`set_up` resolves the data set, the mesh and the shapes, and restores the newest
checkpoint that loads (or initialises a new run); then each step feeds one batch to the
jitted step (`training.train_step`), logging every `log_every` steps, validating the
EMA weights every `eval_every` (`training.validation`) and saving every `save_every`
(`training.checkpoints`). Batches are prepared on a background thread; each process
reads only its own shards. Checkpoints hold everything needed to continue the same
curve with `--resume`; Ctrl-C saves the step it reached.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import jax
import numpy as np
from jax.sharding import Mesh
from tqdm import tqdm

from engine.model import INIT_COMPILER_OPTIONS
from training.checkpoints import RunCheckpoints
from training.config import RunConfig
from training.data.loader import BatchPlan, Prefetcher, Split
from training.data.manifest import read_manifest
from training.data.resolve import resolve_dataset
from training.files import write_text
from training.mesh import batch_sharding, check_shapes, make_mesh, put_replicated, replicated
from training.metrics import MetricsWriter
from training.train_step import init_state, make_optimizer, make_train_step, start_from_model
from training.validation import evaluate_split, make_eval_fn


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def device_description() -> str:
    devices = jax.devices()
    return f"{len(devices)} x {devices[0].device_kind} ({jax.default_backend()}, {jax.process_count()} process(es))"


@dataclasses.dataclass
class Session:
    """What one call of `train` sets up before its first step.

    Attributes:
      directory: the run folder.
      run: the run's configuration, its data shapes resolved (seq_len, batch sizes).
      mesh: ("data", "seq") devices.
      data_dir, manifest: the built data set and its description.
      train_split, valid_split: its splits.
      multiple: what every sequence length is a multiple of (seq shards x pooling).
      checkpoints: the run's checkpoint folder.
      start: the step this session starts at.
      state: the training state (`training.train_step.init_state`), on the mesh.
      valid_nll: the newest validation NLL in bits (from the checkpoint), or None.
      primary: this is process 0 (it prints and writes the metrics).
      wall_before: training seconds of the sessions before this one.
    """

    directory: Path
    run: RunConfig
    mesh: Mesh
    data_dir: Path
    manifest: dict
    train_split: Split
    valid_split: Split
    multiple: int
    checkpoints: RunCheckpoints
    start: int
    state: dict
    valid_nll: float | None
    primary: bool
    wall_before: float
    started_at: float = dataclasses.field(default_factory=time.time)

    def wall_seconds(self) -> float:
        """Training seconds over every session of the run, this one included."""
        return self.wall_before + time.time() - self.started_at


def set_up(run_dir: Path, run: RunConfig, resume: bool, progress: bool) -> Session:
    """Resolves data, mesh and shapes; restores the newest good checkpoint or starts anew."""
    primary = jax.process_index() == 0
    run_dir.mkdir(parents=True, exist_ok=True)
    config, train_cfg, par = run.model, run.train, run.parallel
    mesh = make_mesh(par.data_shards, par.seq_shards)
    data_dir = resolve_dataset(run.data, progress and primary)
    train_split, valid_split = Split(data_dir, "train"), Split(data_dir, "valid")
    multiple = mesh.shape["seq"] * config.total_pooling
    data_cfg = dataclasses.replace(
        run.data,
        path=str(run.data.path),
        seq_len=round_up(run.data.seq_len or train_split.clip_len, multiple),
        batch_size=round_up(run.data.batch_size, mesh.shape["data"]),
        eval_batch_size=round_up(run.data.eval_batch_size, mesh.shape["data"]),
    )
    check_shapes(config, mesh, data_cfg.batch_size, data_cfg.seq_len)
    run = dataclasses.replace(run, data=data_cfg)

    optimizer = make_optimizer(train_cfg)
    checkpoints = RunCheckpoints(run_dir, train_cfg.keep_checkpoints)
    card: dict = {}
    if resume and checkpoints.steps():
        abstract = jax.eval_shape(lambda: init_state(config, train_cfg, optimizer))
        abstract = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=replicated(mesh)), abstract)
        start, state, card = checkpoints.restore_latest(abstract)
        if primary:
            print(f"resumed from step {start} ({checkpoints.directory / str(start)})", flush=True)
    else:
        if checkpoints.steps():
            raise FileExistsError(
                f"{run_dir} already has checkpoints: pass --resume to continue it, or choose a new --run"
            )
        if resume and primary:
            print(f"no checkpoint yet: starting from step 0 ({run_dir} was stopped before its first save)", flush=True)
        state = jax.jit(
            lambda: init_state(config, train_cfg, optimizer),
            out_shardings=replicated(mesh),
            compiler_options=INIT_COMPILER_OPTIONS,
        )()
        if train_cfg.init_from:
            state = start_from_model(state, train_cfg.init_from, config, optimizer, mesh)
        start = 0
    if primary:
        write_text(run_dir / "config.json", run.to_json())
    return Session(
        run_dir,
        run,
        mesh,
        data_dir,
        read_manifest(data_dir),
        train_split,
        valid_split,
        multiple,
        checkpoints,
        start,
        state,
        card.get("valid_nll_bits"),
        primary,
        float(state["wall_s"]),
    )


class ShardedBatches:
    """A step's [batch, seq_len] tokens and mask, built from this process's shards only.

    `host_blocks(step)` reads them (on the prefetch thread); `on_devices(blocks)` places
    them on the mesh.
    """

    def __init__(self, plan: BatchPlan, mesh: Mesh):
        self.plan = plan
        self.shape = (plan.batch_size, plan.seq_len)
        self.sharding = batch_sharding(mesh)
        self.local = sorted(
            {self._bounds(index) for index in self.sharding.addressable_devices_indices_map(self.shape).values()}
        )

    def _bounds(self, index) -> tuple[int, int, int, int]:
        (r0, r1, _), (c0, c1, _) = index[0].indices(self.shape[0]), index[1].indices(self.shape[1])
        return r0, r1, c0, c1

    def host_blocks(self, step: int) -> dict:
        return {b: self.plan.block(step, slice(b[0], b[1]), slice(b[2], b[3])) for b in self.local}

    def on_devices(self, blocks: dict) -> tuple[jax.Array, jax.Array]:
        tokens = jax.make_array_from_callback(self.shape, self.sharding, lambda index: blocks[self._bounds(index)][0])
        mask = jax.make_array_from_callback(self.shape, self.sharding, lambda index: blocks[self._bounds(index)][1])
        return tokens, mask


class LossWindow:
    """The steps since the last log line: their device-side metrics (fetched only when
    logged, so logging never stalls the device) and the time they took."""

    def __init__(self, tokens_per_step: int):
        self.tokens_per_step = tokens_per_step
        self.restart()

    def restart(self) -> None:
        self.outputs: list[dict] = []
        self.started = time.time()

    def exclude_time_until_now(self) -> None:
        """Validation is not training: tokens per second count from here."""
        self.started = time.time()

    def add(self, output: dict) -> None:
        self.outputs.append(output)

    def summary(self) -> dict:
        """Mean finite loss, the newest grad norm and learning rate, tokens per second."""
        fetched = jax.device_get(self.outputs)
        finite = [float(v["loss"]) for v in fetched if math.isfinite(float(v["loss"]))]
        elapsed = max(time.time() - self.started, 1e-9)
        return {
            "loss_bits": float(np.mean(finite)) if finite else float("nan"),
            "grad_norm": float(fetched[-1]["grad_norm"]),
            "lr": float(fetched[-1]["lr"]),
            "tokens_per_s": len(fetched) * self.tokens_per_step / elapsed,
        }


def model_card(session: Session, step: int) -> dict:
    """What the model card of a checkpoint at `step` says about its training."""
    data = session.run.data
    return {
        "name": session.directory.name,
        "data": {
            "kind": session.manifest.get("kind"),
            "path": str(session.data_dir),
            "source": session.manifest.get("source"),
            "hours": session.manifest.get("hours"),
            "clips": session.manifest.get("clips"),
        },
        "preset": session.run.train.preset,
        "steps": int(step),
        "wall_seconds": round(session.wall_seconds(), 1),
        "device": device_description(),
        "seq_len": data.seq_len,
        "batch_size": data.batch_size,
        "valid_nll_bits": session.valid_nll,
        "skipped_updates": int(session.state["skipped"]),
        "weights": "EMA",
    }


def save(session: Session, step: int) -> None:
    session.state["wall_s"] = put_replicated(np.float32(session.wall_seconds()), session.mesh)
    session.checkpoints.save(step, session.state, session.run.model, model_card(session, step), session.run.to_dict())


def train(
    run_dir: str | Path, run: RunConfig, resume: bool = False, progress: bool = True, stop_after: int = 0
) -> dict:
    """Trains, writing RUN/{config.json, metrics.csv, tensorboard/, checkpoints/}.

    Args:
      run_dir: the run folder.
      run: the full configuration.
      resume: continue from the newest checkpoint that loads (the saved configs win).
      stop_after: stop (without a final save) after this many steps in this call:
        for tests that simulate a crash. 0 = no limit.

    Returns a summary dict (steps, last losses, tokens/s, skipped updates).
    """
    session = set_up(Path(run_dir), run, resume, progress)
    run, primary, mesh = session.run, session.primary, session.mesh
    train_cfg, data_cfg = run.train, run.data
    train_step = make_train_step(run.model, train_cfg, mesh, make_optimizer(train_cfg), run.parallel)
    eval_fn = make_eval_fn(run.model, mesh)
    batches = ShardedBatches(
        BatchPlan(session.train_split, data_cfg.batch_size, data_cfg.seq_len, train_cfg.seed), mesh
    )
    prefetch = Prefetcher(batches.host_blocks, session.start)
    metrics = MetricsWriter(session.directory, session.start, enabled=primary)
    bar = tqdm(
        total=train_cfg.steps,
        initial=session.start,
        desc="train",
        unit="step",
        disable=not (progress and primary),
        dynamic_ncols=True,
    )
    window = LossWindow(data_cfg.batch_size * data_cfg.seq_len)
    deadline = session.started_at + train_cfg.max_minutes * 60 if train_cfg.max_minutes > 0 else None
    summary: dict = {"start_step": session.start, "losses": []}

    def validate(step: int) -> None:
        session.valid_nll = evaluate_split(
            eval_fn,
            session.state["ema"],
            session.valid_split,
            mesh,
            data_cfg.eval_batch_size,
            session.multiple,
            data_cfg.eval_clips,
        )
        metrics.write(step, "valid", loss_bits=session.valid_nll)
        if primary:
            bar.write(f"step {step}: valid NLL {session.valid_nll:.4f} bits/sample (EMA weights)")

    step, stopped = session.start, "steps"
    try:
        while step < train_cfg.steps:
            session.state, output = train_step(session.state, *batches.on_devices(prefetch.get(step)))
            window.add(output)
            step += 1
            if step % train_cfg.log_every == 0 or step == train_cfg.steps:
                logged = window.summary()
                skipped = int(session.state["skipped"])
                summary["losses"].append((step, logged["loss_bits"]))
                summary["tokens_per_s"] = logged["tokens_per_s"]
                metrics.write(step, "train", **logged, skipped=skipped, wall_s=session.wall_seconds())
                bar.set_postfix_str(
                    f"bits/sample {logged['loss_bits']:.3f} | {logged['tokens_per_s']:,.0f} tok/s | skipped {skipped}"
                )
                window.restart()
            bar.update(1)
            if train_cfg.eval_every > 0 and step % train_cfg.eval_every == 0 and step < train_cfg.steps:
                validate(step)
                window.exclude_time_until_now()
            if stop_after and step - session.start >= stop_after:
                stopped = "stop_after"
                break
            if train_cfg.save_every and step % train_cfg.save_every == 0 and step < train_cfg.steps:
                save(session, step)
            if deadline and time.time() > deadline:
                stopped = "max_minutes"
                if primary:
                    bar.write(f"wall-time budget of {train_cfg.max_minutes} min reached at step {step}")
                break
        if stopped != "stop_after":
            if train_cfg.eval_every >= 0:
                validate(step)
            save(session, step)
    except KeyboardInterrupt:
        if primary:
            bar.write(f"interrupted: saving step {step}")
        save(session, step)
        raise
    finally:
        bar.close()
        prefetch.close()
        metrics.close()
        session.checkpoints.close()
    summary.update(
        steps=step,
        stopped=stopped,
        valid_nll_bits=session.valid_nll,
        skipped=int(session.state["skipped"]),
        final_params=session.state["params"],
        ema=session.state["ema"],
        seq_len=data_cfg.seq_len,
        batch_size=data_cfg.batch_size,
    )
    return summary
