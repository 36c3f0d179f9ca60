"""A level side's identical block pairs, run over time by one `lax.scan` over pairs.

Unrolled, every block would be compiled separately: the `paper` preset's 36 temporal
blocks, each with its own associative scan and its transpose, took minutes to compile for
a training step. The parallel path stacks the pairs' weights and scans one compiled
block-pair body over them, however many pairs there are.

The weights stay one subtree per pair, {"pair_0": BlockPair params, "pair_1": ...}, so
that the one-step path reads them in place: slicing a stacked array would copy a pooled
level's weights every time that level fires, which costs the real-time generator more
than a tenth of its speed on a CPU. States are a tuple of per-pair `TemporalBlockState`s.
"""

from __future__ import annotations

import operator
from typing import cast

import flax.linen as nn
import jax
import jax.numpy as jnp

from engine.blocks import BlockPair, TemporalBlockState
from engine.config import ModelConfig


class BlockStack(nn.Module):
    """`pairs` block pairs of one level side, applied in order.

    Attributes:
      config: the model config.
      level: the level the blocks belong to (sets their width).
      pairs: how many block pairs.
      blocks_in_level: all blocks of the level (scales the residual initialisation).
      sequence_axis: mesh axis the time axis is split over (inside shard_map), or None.
      remat: recompute each pair's activations in the backward pass (long sequences).
    """

    config: ModelConfig
    level: int
    pairs: int
    blocks_in_level: int
    sequence_axis: str | None = None
    remat: bool = False

    def _pair(self, sequence_axis: str | None) -> BlockPair:
        # parent=None: a free-standing module applied to given weights, not a child.
        return BlockPair(self.config, self.level, self.blocks_in_level, sequence_axis, parent=None)

    def setup(self):
        width = self.config.widths[self.level]
        pair = self._pair(None)  # initialised outside any shard_map

        def init(key: jax.Array) -> dict:
            return pair.init(key, jnp.zeros((1, 1, width), jnp.float32), 1)["params"]

        self.pair_params = tuple(self.param(f"pair_{i}", init) for i in range(self.pairs))

    def __call__(
        self,
        x: jax.Array,
        length: jax.Array | int,
        deterministic: bool = True,
        states: tuple[TemporalBlockState, ...] | None = None,
    ) -> tuple[jax.Array, tuple[TemporalBlockState, ...]]:
        """Parallel over time: x [B, T, d] -> (y [B, T, d], per-pair states after step
        length - 1), starting from the per-pair `states` (zero if None)."""
        if self.pairs == 0:
            return x, ()
        pair = self._pair(self.sequence_axis)

        def body(x, layer):
            params, key, state = layer
            rngs = None if key is None else {"dropout": key}
            return pair.apply({"params": params}, x, length, deterministic, state, rngs=rngs)

        if self.remat:
            body = jax.checkpoint(body, prevent_cse=False)
        keys = None if deterministic else jax.random.split(self.make_rng("dropout"), self.pairs)
        stacked = jax.tree.map(lambda *weights: jnp.stack(weights), *self.pair_params)
        initial = None if states is None else jax.tree.map(lambda *s: jnp.stack(s), *states)
        x, states = jax.lax.scan(body, x, (stacked, keys, initial))
        return x, tuple(jax.tree.map(operator.itemgetter(i), states) for i in range(self.pairs))

    def step(
        self, x: jax.Array, states: tuple[TemporalBlockState, ...]
    ) -> tuple[jax.Array, tuple[TemporalBlockState, ...]]:
        """One step: x [B, d] -> (y [B, d], next per-pair states).

        Unrolled over the pairs: a step is a few small matrix-vector products, where a
        loop's overhead would cost more than the code it saves.
        """
        pair = self._pair(None)
        new_states = []
        for params, state in zip(self.pair_params, states, strict=True):
            # flax's apply is typed as returning its mutable collections too: say what it is.
            x, new_state = cast(
                tuple[jax.Array, TemporalBlockState], pair.apply({"params": params}, x, state, method=BlockPair.step)
            )
            new_states.append(new_state)
        return x, tuple(new_states)
