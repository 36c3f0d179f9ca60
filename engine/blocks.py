"""Pre-norm residual blocks (docs/spec.md §4).

Temporal block: z = norm(x); y = Dense(CGLRU(conv?(z)) * gelu(Dense(z))); x + dropout(y).
MLP block:      z = norm(x); x + dropout(Dense(gelu(Dense_2d(z)) * Dense_2d(z))).
Block pair:     a temporal block, then an MLP block: one layer of a level.
Each residual output projection starts small, scaled by 1 / (blocks in the level).
"""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from engine.cglru import CGLRU, CGLRUState
from engine.config import ModelConfig
from engine.halo import pad_left, window_before


def make_norm(kind: str, name: str) -> nn.Module:
    return nn.LayerNorm(name=name) if kind == "layer" else nn.RMSNorm(name=name)


def residual_init(blocks_in_level: int):
    """Initialiser for a residual output projection: lecun normal / blocks_in_level."""
    scale = 1.0 / max(1, blocks_in_level) ** 2
    return nn.initializers.variance_scaling(scale, "fan_in", "truncated_normal")


class CausalConvState(NamedTuple):
    """The last kernel - 1 inputs of a causal conv: [B, kernel - 1, d]."""

    window: jax.Array


class CausalConv(nn.Module):
    """Depthwise causal conv along time: y_t = b + sum_i w_i x_{t - kernel + 1 + i}."""

    width: int
    kernel: int
    sequence_axis: str | None = None

    def setup(self):
        self.weight = self.param(
            "weight", nn.initializers.lecun_normal(in_axis=0, out_axis=1), (self.kernel, self.width)
        )
        self.bias = self.param("bias", nn.initializers.zeros, (self.width,))

    def __call__(
        self, x: jax.Array, length: jax.Array | int, state: CausalConvState | None = None
    ) -> tuple[jax.Array, CausalConvState]:
        """x [B, T, d] -> (y [B, T, d], state after step length - 1); `state` holds the
        inputs before step 0 (zeros if None)."""
        padded = pad_left(x, self.kernel - 1, self.sequence_axis, None if state is None else state.window)
        steps = x.shape[1]
        y = sum(padded[:, i : i + steps] * self.weight[i] for i in range(self.kernel))
        return y + self.bias, CausalConvState(window_before(padded, self.kernel - 1, length))

    def step(self, x: jax.Array, state: CausalConvState) -> tuple[jax.Array, CausalConvState]:
        """x [B, d] -> (y [B, d], next state)."""
        window = jnp.concatenate([state.window, x[:, None]], axis=1)
        y = jnp.einsum("bkd,kd->bd", window, self.weight) + self.bias
        return y, CausalConvState(window[:, 1:])


class TemporalBlockState(NamedTuple):
    """State of a temporal block: its CG-LRU's, and its conv's window (None if no conv)."""

    lru: CGLRUState
    conv: CausalConvState | None

    @classmethod
    def zeros(cls, config: ModelConfig, level: int, batch: int) -> TemporalBlockState:
        width = config.widths[level]
        conv = None
        if config.conv_kernel:
            conv = CausalConvState(jnp.zeros((batch, config.conv_kernel - 1, width), jnp.float32))
        return cls(CGLRUState.zeros(batch, config.lru_width(level)), conv)


class TemporalBlock(nn.Module):
    """Mixes along time through a CG-LRU, gated by a GELU branch."""

    config: ModelConfig
    level: int
    blocks_in_level: int
    sequence_axis: str | None = None

    def setup(self):
        cfg, width = self.config, self.config.widths[self.level]
        self.norm = make_norm(cfg.norm, "norm")
        self.conv = CausalConv(width, cfg.conv_kernel, self.sequence_axis, name="conv") if cfg.conv_kernel else None
        self.lru = CGLRU(width, cfg.lru_width(self.level), cfg.gate_blocks, cfg.scan, self.sequence_axis, name="lru")
        self.gate_proj = nn.Dense(width, name="gate_proj")
        self.out_proj = nn.Dense(width, kernel_init=residual_init(self.blocks_in_level), name="out_proj")
        self.dropout = nn.Dropout(cfg.dropout)

    def __call__(
        self,
        x: jax.Array,
        length: jax.Array | int,
        deterministic: bool = True,
        state: TemporalBlockState | None = None,
    ) -> tuple[jax.Array, TemporalBlockState]:
        """x [B, T, d] -> (x + residual [B, T, d], state after step length - 1); `state` is
        the state before step 0 (zero if None)."""
        z = self.norm(x)
        conv_state = None
        lru_in = z
        if self.conv is not None:
            lru_in, conv_state = self.conv(z, length, None if state is None else state.conv)
        recurrent, lru_state = self.lru(lru_in, None if state is None else state.lru, length)
        y = self.out_proj(recurrent * nn.gelu(self.gate_proj(z)))
        return x + self.dropout(y, deterministic=deterministic), TemporalBlockState(lru_state, conv_state)

    def step(self, x: jax.Array, state: TemporalBlockState) -> tuple[jax.Array, TemporalBlockState]:
        """x [B, d] -> (x + residual [B, d], next state)."""
        z = self.norm(x)
        conv_state = state.conv
        lru_in = z
        if self.conv is not None:
            lru_in, conv_state = self.conv.step(z, state.conv)
        recurrent, lru_state = self.lru.step(lru_in, state.lru)
        y = self.out_proj(recurrent * nn.gelu(self.gate_proj(z)))
        return x + y, TemporalBlockState(lru_state, conv_state)


class MLPBlock(nn.Module):
    """Gated MLP with expansion 2; position-wise, so one path serves [B, T, d] and [B, d]."""

    config: ModelConfig
    level: int
    blocks_in_level: int

    def setup(self):
        width = self.config.widths[self.level]
        self.norm = make_norm(self.config.norm, "norm")
        self.up_proj = nn.Dense(2 * width, name="up_proj")
        self.gate_proj = nn.Dense(2 * width, name="gate_proj")
        self.out_proj = nn.Dense(width, kernel_init=residual_init(self.blocks_in_level), name="out_proj")
        self.dropout = nn.Dropout(self.config.dropout)

    def __call__(self, x: jax.Array, deterministic: bool = True) -> jax.Array:
        """x [..., d] -> x + residual [..., d]."""
        z = self.norm(x)
        y = self.out_proj(nn.gelu(self.gate_proj(z)) * self.up_proj(z))
        return x + self.dropout(y, deterministic=deterministic)


class BlockPair(nn.Module):
    """A temporal block followed by an MLP block: the repeated layer of a level."""

    config: ModelConfig
    level: int
    blocks_in_level: int
    sequence_axis: str | None = None

    def setup(self):
        cfg, level, blocks = self.config, self.level, self.blocks_in_level
        self.temporal = TemporalBlock(cfg, level, blocks, self.sequence_axis, name="temporal")
        self.mlp = MLPBlock(cfg, level, blocks, name="mlp")

    def __call__(
        self,
        x: jax.Array,
        length: jax.Array | int,
        deterministic: bool = True,
        state: TemporalBlockState | None = None,
    ) -> tuple[jax.Array, TemporalBlockState]:
        """x [B, T, d] -> (y [B, T, d], state after step length - 1), from `state` (zero
        if None)."""
        x, state = self.temporal(x, length, deterministic, state)
        return self.mlp(x, deterministic), state

    def step(self, x: jax.Array, state: TemporalBlockState) -> tuple[jax.Array, TemporalBlockState]:
        """x [B, d] -> (y [B, d], next state)."""
        x, state = self.temporal.step(x, state)
        return self.mlp(x), state
