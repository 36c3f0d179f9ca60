"""Left context across sequence shards, for the causal ops that look back in time.

Under context parallelism (docs/spec.md §7) each device holds a contiguous chunk of time. A causal
op that reads the `size` steps before its chunk's start (the input shift, a short conv,
a down-pool window) gets them from the previous chunk with one `ppermute`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def left_context(x: jax.Array, size: int, axis_name: str | None, before: jax.Array | None = None) -> jax.Array:
    """The `size` time steps just before this chunk.

    Args:
      x: [B, T, ...], this chunk (T >= size when sharded).
      size: number of steps wanted.
      axis_name: mesh axis the time axis is split over inside `shard_map`, or None when
        the sequence is whole (then the context is `before`).
      before: [B, size, ...], the steps before t = 0 of a whole sequence that continues
        an earlier one (a carried state); None for the zero padding. Ignored when sharded
        (`HarmonicRNN` refuses a state with a sequence axis).

    Returns:
      [B, size, ...]: the previous chunk's last `size` steps; `before` or zeros for the
      first chunk.
    """
    zeros = jnp.zeros((x.shape[0], size) + x.shape[2:], x.dtype)
    if axis_name is None or size == 0:
        return zeros if before is None else before
    shards = jax.lax.axis_size(axis_name)
    tail = x[:, x.shape[1] - size :]
    return jax.lax.ppermute(tail, axis_name, [(i, i + 1) for i in range(shards - 1)])


def pad_left(x: jax.Array, size: int, axis_name: str | None, before: jax.Array | None = None) -> jax.Array:
    """[B, T, ...] -> [B, size + T, ...] with the left context in front (see above)."""
    return jnp.concatenate([left_context(x, size, axis_name, before), x], axis=1)


def window_before(padded: jax.Array, size: int, length: jax.Array | int) -> jax.Array:
    """The `size` inputs just before step `length`, from `pad_left(x, size, ...)`.

    Args:
      padded: [B, size + T, ...].
      size: the padding in front.
      length: int32 [], number of valid steps of x (0 < length <= T).

    Returns:
      [B, size, ...]: x[:, length - size : length], zeros before t = 0.
    """
    return jax.lax.dynamic_slice_in_dim(padded, length, size, axis=1)
