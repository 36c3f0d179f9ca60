"""The HarmonicRNN network: a recursive U-Net of pooled levels (docs/spec.md §5).

    Level(x):  x = down blocks(x); skip = x
               x = UpPool(Level_next(DownPool(x))) + skip     (deepest level: just blocks)
               x = up blocks(x)

Every module has a parallel path (`__call__`, over a sequence from the zero state or from
a given state, returning the final state too) and a one-step path (`step`). In the one-step path level
k + 1 steps only when level k's down-pool fires, once every p_k of level k's steps; its
p up-pooled outputs are then consumed one per step.
"""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from engine.block_stack import BlockStack
from engine.blocks import TemporalBlockState, make_norm
from engine.config import ModelConfig
from engine.embedding import TokenEmbedding
from engine.mulaw import NUM_CLASSES
from engine.pooling import DownPool, UpPool


class LevelState(NamedTuple):
    """State of one level and, recursively, the levels below it.

    Attributes:
      t: int32 [], steps this level has taken.
      down: states of the temporal blocks before the pooling.
      up: states of the temporal blocks after it (empty for the deepest level).
      pool_window: [B, p - 1, d], the down-pool's last inputs (None: deepest level).
      pending: [B, p, d], up-pooled outputs of the inner level's last step, consumed one
        per step (None: deepest level).
      inner: the next level's state (None: deepest level).
    """

    t: jax.Array
    down: tuple[TemporalBlockState, ...]
    up: tuple[TemporalBlockState, ...]
    pool_window: jax.Array | None
    pending: jax.Array | None
    inner: LevelState | None

    @classmethod
    def zeros(cls, config: ModelConfig, level: int, batch: int) -> LevelState:
        """The state before any input: zero recurrences, zero padding before t = 0."""
        blocks = config.blocks[level]
        block_states = tuple(TemporalBlockState.zeros(config, level, batch) for _ in range(blocks))
        if level == config.num_levels - 1:
            return cls(jnp.zeros((), jnp.int32), block_states, (), None, None, None)
        width, factor = config.widths[level], config.pooling[level]
        return cls(
            t=jnp.zeros((), jnp.int32),
            down=block_states,
            up=tuple(TemporalBlockState.zeros(config, level, batch) for _ in range(blocks)),
            pool_window=jnp.zeros((batch, factor - 1, width), jnp.float32),
            pending=jnp.zeros((batch, factor, width), jnp.float32),
            inner=cls.zeros(config, level + 1, batch),
        )


class Level(nn.Module):
    """Level `level` of the U-Net and, through `inner`, all levels below it."""

    config: ModelConfig
    level: int
    sequence_axis: str | None = None
    remat: bool = False

    @property
    def is_deepest(self) -> bool:
        return self.level == self.config.num_levels - 1

    def setup(self):
        cfg, level = self.config, self.level
        pairs = cfg.blocks[level]
        sides = 1 if self.is_deepest else 2
        blocks_in_level = 2 * pairs * sides

        def side(name):
            return BlockStack(cfg, level, pairs, blocks_in_level, self.sequence_axis, self.remat, name=name)

        self.down_blocks = side("down_blocks")
        if not self.is_deepest:
            width, inner_width = cfg.widths[level], cfg.widths[level + 1]
            factor, groups = cfg.pooling[level], cfg.pool_groups
            self.down_pool = DownPool(width, inner_width, factor, groups, self.sequence_axis, name="down_pool")
            self.inner = Level(cfg, level + 1, self.sequence_axis, self.remat, name="inner")
            self.up_pool = UpPool(inner_width, width, factor, groups, name="up_pool")
            self.up_blocks = side("up_blocks")

    def __call__(
        self,
        x: Float[Array, "batch time width"],
        length: jax.Array | int,
        deterministic: bool = True,
        state: LevelState | None = None,
    ) -> tuple[Float[Array, "batch time width"], LevelState]:
        """Parallel over time.

        Args:
          x: [B, T, d].
          length: int32 [], valid steps (<= T); later steps are padding and, the model
            being causal, change neither the outputs before them nor the state.
          deterministic: no dropout.
          state: the state before step 0 (None: the zero state). With a state, x continues
            its sequence: state.t must be a multiple of the pooling product of this level
            and those below it, so that every pooled level starts at a pooling boundary
            (its `pending` outputs are then used up, and the down-pool window carries over).

        Returns:
          (y [B, T, d], state after step length - 1).
        """
        t = jnp.asarray(length, jnp.int32)
        t_before = jnp.zeros((), jnp.int32) if state is None else state.t
        x, down = self.down_blocks(x, t, deterministic, None if state is None else state.down)
        if self.is_deepest:
            return x, LevelState(t_before + t, down, (), None, None, None)
        factor = self.config.pooling[self.level]
        skip = x
        pooled, pool_window = self.down_pool(x, t, None if state is None else state.pool_window)
        inner_length = (t + factor - 1) // factor
        inner_y, inner_state = self.inner(pooled, inner_length, deterministic, None if state is None else state.inner)
        up = self.up_pool(inner_y)
        pending = jax.lax.dynamic_slice_in_dim(up, (inner_length - 1) * factor, factor, axis=1)
        x, up_states = self.up_blocks(up[:, : x.shape[1]] + skip, t, deterministic, None if state is None else state.up)
        return x, LevelState(t_before + t, down, up_states, pool_window, pending, inner_state)

    def step(self, x: Float[Array, "batch width"], state: LevelState) -> tuple[Float[Array, "batch width"], LevelState]:
        """One step of this level: x [B, d] -> (y [B, d], next state)."""
        x, down = self.down_blocks.step(x, state.down)
        if self.is_deepest:
            return x, state._replace(t=state.t + 1, down=down)
        skip = x
        assert state.pool_window is not None  # every level above the deepest pools
        window, pool_window = DownPool.push(state.pool_window, x)
        phase = state.t % self.config.pooling[self.level]

        def fire(level, window, inner_state, pending):
            inner_y, inner_state = level.inner.step(level.down_pool.pool(window), inner_state)
            return level.up_pool.expand(inner_y), inner_state

        def hold(level, window, inner_state, pending):
            return pending, inner_state

        pending, inner_state = nn.cond(phase == 0, fire, hold, self, window, state.inner, state.pending)
        x = jax.lax.dynamic_index_in_dim(pending, phase, axis=1, keepdims=False) + skip
        x, up = self.up_blocks.step(x, state.up)
        return x, LevelState(state.t + 1, down, up, pool_window, pending, inner_state)


class HarmonicRNN(nn.Module):
    """Embedding -> U-Net of levels -> norm -> Dense(256).

    Takes input tokens (already shifted right by one, START first); see `engine.model`.
    """

    config: ModelConfig
    sequence_axis: str | None = None
    remat: bool = False

    def setup(self):
        cfg = self.config
        self.embed = TokenEmbedding(cfg.widths[0], cfg.embedding, name="embed")
        self.root = Level(cfg, 0, self.sequence_axis, self.remat, name="root")
        self.final_norm = make_norm(cfg.norm, "final_norm")
        self.head = nn.Dense(NUM_CLASSES, name="head")

    def __call__(
        self,
        inputs: Int[Array, "batch time"],
        deterministic: bool = True,
        length: jax.Array | int | None = None,
        state: LevelState | None = None,
    ) -> tuple[Float[Array, "batch time 256"], LevelState]:
        """inputs int32 [B, T] -> (logits float32 [B, T, 256], state after step length - 1).

        `length` (int32 [], default T) marks the valid inputs; the rest is padding.
        `state` continues an earlier part of the sequence (see `Level.__call__`; only
        without a sequence axis); None starts from the zero state.
        """
        if state is not None and self.sequence_axis is not None:
            # Each shard would start from the state; the scans' cross-shard fold assumes zero.
            raise ValueError("a carried state needs the whole sequence on one device (sequence_axis None)")
        length = inputs.shape[1] if length is None else length
        x, state = self.root(self.embed(inputs), length, deterministic, state)
        return self.head(self.final_norm(x)).astype(jnp.float32), state

    def step(self, inputs: Int[Array, " batch"], state: LevelState) -> tuple[Float[Array, "batch 256"], LevelState]:
        """inputs int32 [B] -> (logits float32 [B, 256], next state)."""
        x, state = self.root.step(self.embed(inputs), state)
        return self.head(self.final_norm(x)).astype(jnp.float32), state
