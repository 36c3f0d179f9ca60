"""Inputs corrupted a little against clean targets (issue 15, docs/gpu-runs.md "Next").

A model that plays its own samples feeds on inputs a little off the music it was trained on,
and its takes drift: its own take at temperature 1 is 2.2 bits per sample more surprising to
it than real music (docs/results.md, "Surprisal of real music and of runaways"). Training on
inputs where a share of the samples is moved a few mu-law classes, while the targets stay the
clean samples, teaches the model to read through such errors instead of following them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from engine.mulaw import NUM_CLASSES


def corrupt(tokens: jax.Array, key: jax.Array, rate: float, reach: int) -> jax.Array:
    """tokens int [B, T] -> int [B, T]: each sample, with probability `rate`, moved by 1 to
    `reach` classes up or down (clipped to the classes there are)."""
    moved, steps, down = jax.random.split(key, 3)
    offset = jax.random.randint(steps, tokens.shape, 1, reach + 1)
    offset = jnp.where(jax.random.bernoulli(down, 0.5, tokens.shape), -offset, offset)
    offset = jnp.where(jax.random.bernoulli(moved, rate, tokens.shape), offset, 0)
    return jnp.clip(tokens + offset.astype(tokens.dtype), 0, NUM_CLASSES - 1)
