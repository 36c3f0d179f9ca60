"""The training state and the one jitted step that advances it (docs/spec.md §6).

The step takes the sharded masked NLL in bits and its gradients (`training.loss`),
clips the global norm, applies AdamW with warm-up and a constant or cosine schedule,
skips (and counts) an update whose loss is not finite or whose grad norm is huge, and
keeps an EMA of the weights. Its buffers are donated: the state is updated in place.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from engine import model
from engine.checkpoint import load_model
from training import input_noise
from training.config import ParallelConfig, TrainConfig
from training.loss import mean_loss
from training.mesh import put_replicated, replicated


def learning_rate(train: TrainConfig) -> optax.Schedule:
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


def init_state(config: model.ModelConfig, train: TrainConfig, optimizer: optax.GradientTransformation) -> dict:
    """The state a run starts from; every entry is saved with each checkpoint.

    params, ema (pytrees), opt_state, step and skipped (int32 scalars), rng (key data
    for dropout), wall_s (float32: training seconds over all sessions of the run).
    """
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


def start_from_model(state: dict, path: str, config: model.ModelConfig, optimizer, mesh) -> dict:
    """`state` (a new run's) with the weights of the model checkpoint at `path` as both
    params and EMA, and a fresh optimiser state for them (the run warms up again).

    Raises:
      ValueError: that model's config is not `config` (dropout aside).
    """
    loaded = load_model(path)
    if loaded.config.replace(dropout=config.dropout) != config:
        raise ValueError(f"--init-from {path}: that model's shape is not the run's (choose its --preset)")
    params = put_replicated(loaded.params, mesh)
    return {
        **state,
        "params": params,
        "ema": put_replicated(loaded.params, mesh),
        "opt_state": jax.jit(optimizer.init, out_shardings=replicated(mesh))(params),
    }


# `jax.default_matmul_precision` names of ParallelConfig.matmul: a dot algorithm preset
# pins bfloat16 inputs with float32 accumulation on every backend (GPU, TPU and CPU alike),
# where the "bfloat16" precision name would mean TF32 on NVIDIA GPUs.
MATMUL_PRECISION = {"default": None, "bf16": "BF16_BF16_F32"}


def make_train_step(config, train: TrainConfig, mesh, optimizer, parallel: ParallelConfig):
    """jit(state, tokens int32 [B, T], mask [B, T]) -> (state, metrics), state donated;
    metrics: loss (bits), grad_norm, lr, ok (the update was applied). The loss and its
    gradients take their matrix products at `parallel.matmul` precision."""
    schedule = learning_rate(train)

    def step_fn(state, tokens, mask):
        step = state["step"]
        step_key = jax.random.fold_in(jax.random.wrap_key_data(state["rng"]), step)
        dropout_key = step_key if config.dropout > 0 else None
        inputs = None
        if train.input_noise > 0:
            inputs = input_noise.corrupt(
                tokens, jax.random.fold_in(step_key, 1), train.input_noise, train.input_noise_reach
            )
        with jax.default_matmul_precision(MATMUL_PRECISION[parallel.matmul]):
            loss, grads = jax.value_and_grad(mean_loss)(
                state["params"], config, tokens, mask, mesh, dropout_key, parallel.remat, inputs
            )
        grad_norm = optax.global_norm(grads)
        ok = jnp.isfinite(loss) & jnp.isfinite(grad_norm) & (grad_norm <= train.skip_grad_norm)
        updates, new_opt = optimizer.update(grads, state["opt_state"], state["params"])
        new_params = optax.apply_updates(state["params"], updates)
        # Warm-started EMA: the decay grows to `train.ema`, so short runs are not stuck at init.
        decay = jnp.minimum(train.ema, (1.0 + step) / (10.0 + step))
        new_ema = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, state["ema"], new_params)

        def keep(new, old):
            return jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, old)

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
