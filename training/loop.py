"""The training loop (SPEC 6) over a ("data", "seq") mesh (SPEC 7).

One jitted step with donated buffers: sharded masked NLL in bits and its gradients,
global-norm clipping, AdamW with warm-up and a constant or cosine schedule, an update
skipped (and counted) when the loss is not finite or the grad norm is huge, and an EMA
of the weights. Batches are prepared on a background thread; each process reads only
its own shards. Checkpoints (see `training.checkpoints`) hold everything needed to
continue the same curve with `--resume`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

from engine import model
from training import parallel
from training.checkpoints import RunCheckpoints
from training.config import DataConfig, RunConfig, TrainConfig
from training.data.loader import BatchPlan, Prefetcher, Split, eval_batches
from training.data.manifest import DataError, is_dataset, read_manifest
from training.files import write_text


# ---------------------------------------------------------------------------- data


def dataset_cache_dir(src: Path, clip_seconds: float, scale: str) -> Path:
    from platformdirs import user_cache_dir

    key = hashlib.sha1(f"{src.resolve()}|{clip_seconds}|{scale}".encode()).hexdigest()[:12]
    return Path(os.environ.get("HARMONIC_DATA_CACHE", user_cache_dir("harmonic"))) / "datasets" / f"{src.name}-{key}"


def resolve_dataset(data: DataConfig, progress: bool = True) -> Path:
    """A built data set for `data.path`: itself, or a cached build of an audio folder."""
    src = Path(data.path).expanduser()
    if not src.exists():
        raise DataError(f"no data at {src}")
    if is_dataset(src):
        return src
    cache = dataset_cache_dir(src, data.clip_seconds, data.scale)
    if is_dataset(cache):
        return cache
    from training.data.audio_folder import build_folder

    print(f"{src} has no manifest: building it as a data set into {cache}", flush=True)
    manifest = build_folder(src, cache, data.clip_seconds, data.scale, progress=progress)
    if manifest["skipped"]:
        print(f"skipped {len(manifest['skipped'])} files, unreadable or too short (listed in {cache}/manifest.json)")
    return cache


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


# ---------------------------------------------------------------------------- optimiser


def learning_rate(train: TrainConfig):
    warmup = max(1, train.warmup_steps)
    if train.schedule == "cosine":
        decay_steps = max(1, train.steps - warmup)
        main = optax.cosine_decay_schedule(train.lr, decay_steps, alpha=train.min_lr_ratio)
    else:
        main = optax.constant_schedule(train.lr)
    return optax.join_schedules([optax.linear_schedule(0.0, train.lr, warmup), main], [warmup])


def make_optimizer(train: TrainConfig) -> optax.GradientTransformation:
    return optax.chain(
        optax.clip_by_global_norm(train.grad_clip),
        optax.adamw(learning_rate(train), b1=train.b1, b2=train.b2, weight_decay=train.weight_decay),
    )


def init_state(config: model.ModelConfig, train: TrainConfig, optimizer) -> dict:
    key = jax.random.key(train.seed)
    params = model.init_params(config, key)
    return {
        "params": params,
        "ema": jax.tree.map(jnp.copy, params),
        "opt_state": optimizer.init(params),
        "step": jnp.zeros((), jnp.int32),
        "skipped": jnp.zeros((), jnp.int32),
        "rng": jax.random.key_data(jax.random.fold_in(key, 1)),
        "wall_s": jnp.zeros((), jnp.float32),
    }


def make_train_step(config, train: TrainConfig, mesh, optimizer, remat: bool):
    schedule = learning_rate(train)

    def step_fn(state, tokens, mask):
        step = state["step"]
        dropout_key = jax.random.fold_in(jax.random.wrap_key_data(state["rng"]), step) if config.dropout > 0 else None
        loss, grads = jax.value_and_grad(parallel.mean_loss)(
            state["params"], config, tokens, mask, mesh, dropout_key, remat
        )
        grad_norm = optax.global_norm(grads)
        ok = jnp.isfinite(loss) & jnp.isfinite(grad_norm) & (grad_norm <= train.skip_grad_norm)
        updates, new_opt = optimizer.update(grads, state["opt_state"], state["params"])
        new_params = optax.apply_updates(state["params"], updates)
        # Warm-started EMA: the decay grows to `train.ema`, so short runs are not stuck at init.
        decay = jnp.minimum(train.ema, (1.0 + step) / (10.0 + step))
        new_ema = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, state["ema"], new_params)
        keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, old)
        new_state = dict(state)
        new_state.update(
            params=keep(new_params, state["params"]),
            opt_state=keep(new_opt, state["opt_state"]),
            ema=keep(new_ema, state["ema"]),
            step=step + 1,
            skipped=state["skipped"] + (~ok).astype(jnp.int32),
        )
        metrics = {"loss": loss, "grad_norm": grad_norm, "lr": schedule(step), "ok": ok}
        return new_state, metrics

    return jax.jit(step_fn, donate_argnums=(0,))


def make_eval_fn(config, mesh):
    def eval_fn(params, tokens, mask):
        return parallel.sharded_nll(params, config, tokens, mask, mesh)

    return jax.jit(eval_fn)


def evaluate_split(eval_fn, params, split: Split, mesh, batch_size: int, multiple: int, max_clips: int = 0,
                   progress: bool = False) -> float:
    """Mean NLL in bits per sample over the unpadded samples of (part of) a split."""
    sharding = parallel.batch_sharding(mesh)
    total, count = 0.0, 0.0
    n = len(split) if not max_clips else min(max_clips, len(split))
    batches = eval_batches(split, batch_size, multiple, max_clips)
    for tokens, mask in tqdm(batches, total=-(-n // batch_size), desc=f"eval {split.split}", unit="batch",
                             disable=not progress, leave=False):
        t = jax.make_array_from_callback(tokens.shape, sharding, lambda idx: tokens[idx])
        m = jax.make_array_from_callback(mask.shape, sharding, lambda idx: mask[idx])
        s, c = eval_fn(params, t, m)
        total += float(s)
        count += float(c)
    return total / max(count, 1.0)


# ---------------------------------------------------------------------------- loop


def device_description() -> str:
    devices = jax.devices()
    return f"{len(devices)} x {devices[0].device_kind} ({jax.default_backend()}, {jax.process_count()} process(es))"


def train(run_dir: str | Path, run: RunConfig, resume: bool = False, progress: bool = True,
          stop_after: int = 0) -> dict:
    """Trains, writing RUN/{config.json, metrics.csv, tensorboard/, checkpoints/}.

    Args:
      run_dir: the run folder.
      run: the full configuration.
      resume: continue from the newest checkpoint that loads (the saved configs win).
      stop_after: stop (without a final save) after this many steps in this call:
        for tests that simulate a crash. 0 = no limit.

    Returns a summary dict (steps, last losses, tokens/s, skipped updates).
    """
    run_dir = Path(run_dir)
    primary = jax.process_index() == 0
    run_dir.mkdir(parents=True, exist_ok=True)
    train_cfg, data_cfg, par = run.train, run.data, run.parallel
    config = run.model

    mesh = parallel.make_mesh(par.data_shards, par.seq_shards)
    data_shards, seq_shards = mesh.shape["data"], mesh.shape["seq"]
    data_dir = resolve_dataset(data_cfg, progress and primary)
    manifest = read_manifest(data_dir)
    train_split = Split(data_dir, "train")
    valid_split = Split(data_dir, "valid")
    multiple = seq_shards * config.total_pooling
    seq_len = round_up(data_cfg.seq_len or train_split.clip_len, multiple)
    batch_size = round_up(data_cfg.batch_size, data_shards)
    eval_batch = round_up(data_cfg.eval_batch_size, data_shards)
    parallel.check_shapes(config, mesh, batch_size, seq_len)
    data_cfg = dataclasses.replace(data_cfg, path=str(data_cfg.path), seq_len=seq_len, batch_size=batch_size,
                                   eval_batch_size=eval_batch)
    run = dataclasses.replace(run, data=data_cfg)

    optimizer = make_optimizer(train_cfg)
    replicated = parallel.replicated(mesh)
    abstract = jax.eval_shape(lambda: init_state(config, train_cfg, optimizer))
    abstract = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=replicated), abstract)
    checkpoints = RunCheckpoints(run_dir, train_cfg.keep_checkpoints)
    card = {}
    if resume and checkpoints.steps():
        start, state, card = checkpoints.restore_latest(abstract)
        if primary:
            print(f"resumed from step {start} ({checkpoints.directory / str(start)})", flush=True)
    else:
        if checkpoints.steps() and not resume:
            raise FileExistsError(f"{run_dir} already has checkpoints: pass --resume to continue it, or choose a new --run")
        if resume and primary:
            print(f"no checkpoint yet: starting from step 0 ({run_dir} was stopped before its first save)", flush=True)
        state = jax.jit(lambda: init_state(config, train_cfg, optimizer), out_shardings=replicated)()
        start = 0
    if primary:
        write_text(run_dir / "config.json", run.to_json())

    train_step = make_train_step(config, train_cfg, mesh, optimizer, par.remat)
    eval_fn = make_eval_fn(config, mesh)
    plan = BatchPlan(train_split, batch_size, seq_len, train_cfg.seed)
    sharding = parallel.batch_sharding(mesh)
    shape = (batch_size, seq_len)

    def bounds(idx):
        (r0, r1, _), (c0, c1, _) = idx[0].indices(shape[0]), idx[1].indices(shape[1])
        return r0, r1, c0, c1

    local = sorted({bounds(idx) for idx in sharding.addressable_devices_indices_map(shape).values()})

    def host_blocks(step):  # on the prefetch thread: this process's shards only
        return {b: plan.block(step, slice(b[0], b[1]), slice(b[2], b[3])) for b in local}

    def device_batch(blocks):
        tokens = jax.make_array_from_callback(shape, sharding, lambda idx: blocks[bounds(idx)][0])
        mask = jax.make_array_from_callback(shape, sharding, lambda idx: blocks[bounds(idx)][1])
        return tokens, mask

    prefetch = Prefetcher(host_blocks, start)
    from training.metrics import MetricsWriter

    metrics = MetricsWriter(run_dir, start, enabled=primary)
    tokens_per_step = batch_size * seq_len
    wall_before = float(state["wall_s"])
    session_start = time.time()
    deadline = session_start + train_cfg.max_minutes * 60 if train_cfg.max_minutes > 0 else None
    last_valid = card.get("valid_nll_bits")
    bar = tqdm(total=train_cfg.steps, initial=start, desc="train", unit="step", disable=not (progress and primary),
               dynamic_ncols=True)
    window_losses, window_start, window_steps = [], time.time(), 0
    summary = {"start_step": start, "losses": []}
    step = start
    stopped = "steps"

    def current_card():
        return {
            "name": run_dir.name,
            "data": {"kind": manifest.get("kind"), "path": str(data_dir), "source": manifest.get("source"),
                     "hours": manifest.get("hours"), "clips": manifest.get("clips")},
            "preset": train_cfg.preset,
            "steps": int(step),
            "wall_seconds": round(wall_before + time.time() - session_start, 1),
            "device": device_description(),
            "seq_len": seq_len,
            "batch_size": batch_size,
            "valid_nll_bits": last_valid,
            "skipped_updates": int(state["skipped"]),
            "weights": "EMA",
        }

    def save():
        state["wall_s"] = parallel.put_replicated(np.float32(wall_before + time.time() - session_start), mesh)
        checkpoints.save(step, state, config, current_card(), run.to_dict())

    try:
        while step < train_cfg.steps:
            tokens, mask = device_batch(prefetch.get(step))
            state, out = train_step(state, tokens, mask)
            window_losses.append(out)  # device values: no sync until logged
            step += 1
            window_steps += 1
            if step % train_cfg.log_every == 0 or step == train_cfg.steps:
                fetched = jax.device_get(window_losses)
                values = fetched[-1]
                losses = [float(v["loss"]) for v in fetched]
                elapsed = time.time() - window_start
                tps = window_steps * tokens_per_step / max(elapsed, 1e-9)
                loss = float(np.mean([l for l in losses if math.isfinite(l)] or [float("nan")]))
                summary["losses"].append((step, loss))
                metrics.write(step, "train", loss_bits=loss, grad_norm=float(values["grad_norm"]), lr=float(values["lr"]),
                              tokens_per_s=tps, skipped=int(state["skipped"]), wall_s=wall_before + time.time() - session_start)
                bar.set_postfix_str(f"bits/sample {loss:.3f} | {tps:,.0f} tok/s | skipped {int(state['skipped'])}")
                summary["tokens_per_s"] = tps
                window_losses, window_start, window_steps = [], time.time(), 0
            bar.update(1)
            if train_cfg.eval_every > 0 and step % train_cfg.eval_every == 0 and step < train_cfg.steps:
                last_valid = evaluate_split(eval_fn, state["ema"], valid_split, mesh, eval_batch, multiple, data_cfg.eval_clips)
                metrics.write(step, "valid", loss_bits=last_valid)
                if primary:
                    bar.write(f"step {step}: valid NLL {last_valid:.4f} bits/sample (EMA weights)")
                window_start = time.time()
            if stop_after and step - start >= stop_after:
                stopped = "stop_after"
                break
            if train_cfg.save_every and step % train_cfg.save_every == 0 and step < train_cfg.steps:
                save()
            if deadline and time.time() > deadline:
                stopped = "max_minutes"
                if primary:
                    bar.write(f"wall-time budget of {train_cfg.max_minutes} min reached at step {step}")
                break
        if stopped != "stop_after" and train_cfg.eval_every >= 0:
            last_valid = evaluate_split(eval_fn, state["ema"], valid_split, mesh, eval_batch, multiple, data_cfg.eval_clips)
            metrics.write(step, "valid", loss_bits=last_valid)
            if primary:
                bar.write(f"step {step}: valid NLL {last_valid:.4f} bits/sample (EMA weights)")
        if stopped != "stop_after":
            save()
    except KeyboardInterrupt:
        if primary:
            bar.write(f"interrupted: saving step {step}")
        save()
        raise
    finally:
        bar.close()
        prefetch.close()
        metrics.close()
        checkpoints.close()
    summary.update(
        steps=step,
        stopped=stopped,
        valid_nll_bits=last_valid,
        skipped=int(state["skipped"]),
        final_params=state["params"],
        ema=state["ema"],
        seq_len=seq_len,
        batch_size=batch_size,
    )
    return summary
