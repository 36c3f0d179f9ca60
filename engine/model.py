"""The functional model API shared by training, the generator and the app.

    config = preset("realtime")
    params = init_params(config, key)
    logits = forward(params, config, tokens)            # [B, T] -> [B, T, 256]
    state = init_state(params, config, batch)
    logits, state = step(params, config, state, token)  # [B] -> [B, 256]
    logits, state = prefill(params, config, tokens)     # seed audio [B, L] -> next [B, 256]

`forward(...)[:, t]` is the distribution of `tokens[:, t]` given `tokens[:, :t]`: the
model shifts its input right by one and puts START_TOKEN first. Feeding START_TOKEN to
`step`, then tokens[:, 0], tokens[:, 1], ... gives at call t the logits of
`forward(...)[:, t]`.

Array shapes are annotated (`engine.array_typing`) and checked when `forward` and `step`
are traced and when `prefill` is called: a wrongly shaped input fails with a message that
names the argument, its shape and the expected axes.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import cast

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from engine.array_typing import typed
from engine.config import PRESETS, ModelConfig, preset
from engine.halo import left_context
from engine.mulaw import SILENCE
from engine.unet import HarmonicRNN, LevelState

START_TOKEN = SILENCE
# Most steps seed audio is consumed in at once (rounded up to the pooling product): a
# quarter second of audio, whose activations take little memory. On a 2-core CPU this
# length compiled twice as fast as 16384 steps and ran faster per step too.
PREFILL_CHUNK = 1 << 12

ModelState = LevelState

__all__ = [
    "START_TOKEN",
    "ModelConfig",
    "ModelState",
    "PRESETS",
    "count_params",
    "forward",
    "init_params",
    "init_state",
    "level_param_counts",
    "param_shapes",
    "prefill",
    "preset",
    "step",
]


def _network(config: ModelConfig, sequence_axis: str | None = None, remat: bool = False) -> HarmonicRNN:
    return HarmonicRNN(config, sequence_axis, remat)


# Initialising runs once and compiling is nearly all its time: at XLA's optimisation level 0
# the 2-core CPU compiles `realtime`'s init in 14 s instead of 44 s, and the weights differ
# from level 2's by at most 1.2e-7 (docs/benchmarks.md, "Initialising a model"). Options
# belong to a top-level jit only: a jit that calls `init_params` passes them itself.
INIT_COMPILER_OPTIONS = {"xla_backend_optimization_level": 0}


def _random_weights(config: ModelConfig, key: jax.Array) -> dict:
    dummy = jnp.full((1, config.total_pooling), START_TOKEN, jnp.int32)
    return _network(config).init({"params": key}, dummy)["params"]


_random_weights_alone = jax.jit(_random_weights, static_argnums=(0,), compiler_options=INIT_COMPILER_OPTIONS)


def init_params(config: ModelConfig, key: jax.Array) -> dict:
    """Random initial weights: a nested dict pytree of float32 arrays. Called alone, it is
    compiled alone; inside a jit (or `jax.eval_shape`), it is part of that program."""
    if isinstance(key, jax.core.Tracer):
        return _random_weights(config, key)
    return _random_weights_alone(config, key)


def shift_right(tokens: Int[Array, "batch time"], sequence_axis: str | None = None) -> Int[Array, "batch time"]:
    """tokens [B, T] -> inputs [B, T]: START_TOKEN, tokens[:, 0], ..., tokens[:, T-2].

    Under context parallelism each chunk's first input is the previous chunk's last token.
    """
    before = left_context(tokens, 1, sequence_axis)
    first_chunk = True if sequence_axis is None else jax.lax.axis_index(sequence_axis) == 0
    before = jnp.where(first_chunk, jnp.full_like(before, START_TOKEN), before)
    return jnp.concatenate([before, tokens[:, :-1]], axis=1)


@functools.partial(jax.jit, static_argnames=("config", "sequence_axis", "remat"))
@typed
def forward(
    params: dict,
    config: ModelConfig,
    tokens: Int[Array, "batch time"],
    dropout_key: jax.Array | None = None,
    sequence_axis: str | None = None,
    remat: bool = False,
) -> Float[Array, "batch time 256"]:
    """Next-token logits for every position, parallel over time.

    Args:
      params: from `init_params` or a checkpoint.
      config: the params' config.
      tokens: int32 [B, T], any T >= 1.
      dropout_key: PRNG key for dropout (training); None runs in inference mode.
      sequence_axis: inside `shard_map`, the mesh axis that splits T into contiguous
        chunks (context parallelism, docs/spec.md §7); None for a whole sequence.
      remat: recompute each block's activations in the backward pass.

    Returns:
      float32 [B, T, 256]: logits[:, t] is the distribution of tokens[:, t] given
      tokens[:, :t].
    """
    inputs = shift_right(tokens, sequence_axis)
    rngs = None if dropout_key is None else {"dropout": dropout_key}
    logits, _ = _network(config, sequence_axis, remat).apply({"params": params}, inputs, dropout_key is None, rngs=rngs)
    return logits


def init_state(params: dict, config: ModelConfig, batch: int) -> ModelState:
    """The generator state before START_TOKEN: a pytree of zero arrays with leading B."""
    del params  # The zero state depends only on the shapes in config.
    return LevelState.zeros(config, 0, batch)


@functools.partial(jax.jit, static_argnums=(1,))
@typed
def step(
    params: dict, config: ModelConfig, state: ModelState, token: Int[Array, " batch"]
) -> tuple[Float[Array, "batch 256"], ModelState]:
    """One generation step.

    Args:
      params, config: the model.
      state: from `init_state`, `prefill` or the previous `step`.
      token: int32 [B], the previous sample's class (START_TOKEN at the first call).

    Returns:
      (logits float32 [B, 256] of the next sample, next state).
    """
    # flax types `apply` for the mutable-collections case too (output, variables); without
    # `mutable` it is the method's own (logits, state).
    return cast(
        tuple[jax.Array, ModelState], _network(config).apply({"params": params}, token, state, method=HarmonicRNN.step)
    )


@functools.partial(jax.jit, static_argnums=(1,))
def _prefill_chunk(params: dict, config: ModelConfig, state: ModelState, inputs: jax.Array, length: jax.Array):
    """One chunk of seed audio: inputs int32 [B, C] (valid up to `length`) from `state` ->
    (logits [B, 256] after input length - 1, the state after it)."""
    # flax's `apply` type covers the mutable-collections case; without `mutable` it is the call's own.
    logits, state = cast(
        tuple[jax.Array, ModelState], _network(config).apply({"params": params}, inputs, True, length, state)
    )
    return jax.lax.dynamic_index_in_dim(logits, length - 1, axis=1, keepdims=False), state


def prefill_chunk_length(length: int, config: ModelConfig, max_steps: int = PREFILL_CHUNK) -> int:
    """Steps per compiled prefill chunk for seed audio of `length` tokens (plus START_TOKEN).

    A multiple of the pooling product, so that every chunk starts at a pooling boundary
    of every level: the product times the next power of two for short clips (few
    programs, little padding), at most `max_steps` rounded up to the product.
    """
    blocks = math.ceil((length + 1) / config.total_pooling)
    bucket = config.total_pooling * (1 << max(0, blocks - 1).bit_length())
    return min(bucket, config.total_pooling * math.ceil(max_steps / config.total_pooling))


@typed
def prefill(
    params: dict,
    config: ModelConfig,
    tokens: Int[Array | np.ndarray, "batch length"],
    progress: Callable[[int, int], None] | None = None,
    max_steps: int = PREFILL_CHUNK,
) -> tuple[Float[Array, "batch 256"], ModelState]:
    """Consumes seed audio in parallel over time, chunk by chunk.

    START_TOKEN and the seed audio are cut into chunks of `prefill_chunk_length` steps (the
    last padded; the causal model keeps the padding out of the result), each run by one
    compiled program from the state the chunk before left. Memory is that of one chunk
    and clips of any length share one program per chunk length.

    Args:
      params, config: the model.
      tokens: int32 [B, L], the seed audio's classes (host or device array), any L >= 0.
      progress: called as progress(steps_done, steps_total) after each chunk has run
        (steps_total = L + 1); None runs the chunks without waiting for each.
      max_steps: longest chunk (tests use short ones).

    Returns:
      (logits float32 [B, 256] of the sample after the seed audio, the state after START_TOKEN
      and all L tokens): continuing with `step(..., tokens_next)` matches `forward` on
      the concatenated sequence.
    """
    # Chunks are cut on the host: eager device slicing would compile for every length.
    prime = np.asarray(tokens, np.int32)
    batch, length = prime.shape
    inputs = np.concatenate([np.full((batch, 1), START_TOKEN, np.int32), prime], axis=1)
    chunk = prefill_chunk_length(length, config, max_steps)
    state = init_state(params, config, batch)
    for start in range(0, length + 1, chunk):
        piece = inputs[:, start : start + chunk]
        valid = piece.shape[1]
        piece = np.pad(piece, ((0, 0), (0, chunk - valid)), constant_values=START_TOKEN)
        logits, state = _prefill_chunk(params, config, state, piece, np.int32(valid))
        if progress is not None:
            jax.block_until_ready(logits)
            progress(start + valid, length + 1)
    return logits, state


def count_params(params) -> int:
    """Total number of scalar parameters in a params pytree (arrays or shape structs)."""
    return int(sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(params)))


def param_shapes(config: ModelConfig) -> dict:
    """The params pytree of `config` as `jax.ShapeDtypeStruct`s, without computing it."""
    return jax.eval_shape(functools.partial(init_params, config), jax.random.key(0))


def level_param_counts(params: dict, config: ModelConfig) -> list[int]:
    """Parameters of each level alone; level 0 includes the embedding, norm and head."""
    counts = []
    level = params["root"]
    for _ in range(config.num_levels):
        own = {name: value for name, value in level.items() if name != "inner"}
        counts.append(count_params(own))
        level = level.get("inner", {})
    io = {name: value for name, value in params.items() if name != "root"}
    counts[0] += count_params(io)
    return counts


def full_rate_equivalent(params: dict, config: ModelConfig) -> float:
    """Sum over levels of params(level) / samples per step of that level (docs/spec.md §8).

    Single-stream stepwise cost on a CPU scales with this: weights read per sample.
    """
    counts = level_param_counts(params, config)
    return sum(count / config.level_rate_divisor(level) for level, count in enumerate(counts))
