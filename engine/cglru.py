"""The complex gated linear recurrent unit, CG-LRU (docs/spec.md §3).

    u_t = W_in x_t + b_in                       (d -> D)
    r_t = sigmoid(BD_a(u_t)),  i_t = sigmoid(BD_x(u_t))     (block-diagonal D -> D/2)
    |a_t| = exp(-8 r_t softplus(lam)),  arg a_t = theta r_t
    h_t = a_t h_{t-1} + sqrt(1 - |a_t|^2) (i_t (u_t[:D/2] + i u_t[D/2:]))
    y_t = W_out [Re h_t; Im h_t] + b_out        (D -> d)

Initialisation follows Griffin: the 8th power of |a| (the decay at full gate, r = 1)
lies on a ring with |a^8|^2 uniform in [0.9^2, 0.99^2]; theta is uniform in [0, 0.1 pi].
The state is float32 and complex numbers are (re, im) pairs (`engine.scan.Complex`).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from engine.scan import Complex, fold_across_shards, linear_scan, linear_step

GATE_POWER = 8.0
RING = (0.9, 0.99)
MAX_PHASE = 0.1 * math.pi
# Largest derivative the square root may pass back; without a bound, |a_t| -> 1 makes
# d sqrt(1 - |a|^2) infinite and training NaNs.
MAX_SQRT_GRADIENT = 1000.0


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def sqrt_bounded_derivative(x: jax.Array, max_gradient: float) -> jax.Array:
    """sqrt(x) whose derivative is clipped at `max_gradient` near zero."""
    return jnp.sqrt(x)


def _sqrt_fwd(x, max_gradient):
    return jnp.sqrt(x), x


def _sqrt_bwd(max_gradient, x, grad):
    floor = 1.0 / (4.0 * max_gradient**2)
    return (grad * 0.5 / jnp.sqrt(jnp.maximum(x, floor)),)


sqrt_bounded_derivative.defvjp(_sqrt_fwd, _sqrt_bwd)


class CGLRUState(NamedTuple):
    """Recurrent state of one CG-LRU: h, parts [B, D/2] float32."""

    h: Complex

    @classmethod
    def zeros(cls, batch: int, lru_width: int) -> CGLRUState:
        return cls(Complex.zeros((batch, lru_width // 2)))


class BlockDiagonalLinear(nn.Module):
    """[..., in] -> [..., out] with a block-diagonal weight of `blocks` blocks."""

    features_in: int
    features_out: int
    blocks: int

    @nn.compact
    def __call__(self, x: Float[Array, "*batch features_in"]) -> Float[Array, "*batch features_out"]:
        size_in, size_out = self.features_in // self.blocks, self.features_out // self.blocks
        kernel = self.param(
            "kernel",
            nn.initializers.lecun_normal(in_axis=1, out_axis=2, batch_axis=(0,)),
            (self.blocks, size_in, size_out),
        )
        bias = self.param("bias", nn.initializers.zeros, (self.features_out,))
        x = x.reshape(x.shape[:-1] + (self.blocks, size_in))
        y = jnp.einsum("...bi,bio->...bo", x, kernel)
        return y.reshape(y.shape[:-2] + (self.features_out,)) + bias


def _ring_init(key, shape, dtype=jnp.float32):
    """lam such that exp(-GATE_POWER softplus(lam)) has its square uniform on RING^2."""
    low, high = RING[0] ** 2, RING[1] ** 2
    modulus = jnp.sqrt(jax.random.uniform(key, shape, dtype, low, high))
    softplus_lam = -jnp.log(modulus) / GATE_POWER
    return jnp.log(jnp.expm1(softplus_lam))


def _phase_init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, 0.0, MAX_PHASE)


class CGLRU(nn.Module):
    """The CG-LRU with a parallel-over-time path and a one-step path.

    Attributes:
      width: model width d.
      lru_width: hidden width D (D / 2 complex channels).
      gate_blocks: blocks of the block-diagonal gates.
      scan_impl: "associative" or "sequential" (see `engine.scan.linear_scan`).
      sequence_axis: mesh axis the time axis is split over (inside shard_map), or None.
    """

    width: int
    lru_width: int
    gate_blocks: int
    scan_impl: str = "associative"
    sequence_axis: str | None = None

    def setup(self):
        half = self.lru_width // 2
        self.in_proj = nn.Dense(self.lru_width, name="in_proj")
        self.gate_a = BlockDiagonalLinear(self.lru_width, half, self.gate_blocks, name="gate_a")
        self.gate_x = BlockDiagonalLinear(self.lru_width, half, self.gate_blocks, name="gate_x")
        self.lam = self.param("lam", _ring_init, (half,))
        self.theta = self.param("theta", _phase_init, (half,))
        self.out_proj = nn.Dense(self.width, name="out_proj")

    def _coefficients(self, x: jax.Array) -> tuple[Complex, Complex]:
        """x [..., d] -> (a_t, b_t), parts [..., D/2], for h_t = a_t h_{t-1} + b_t."""
        u = self.in_proj(x).astype(jnp.float32)
        gate_a = jax.nn.sigmoid(self.gate_a(u))
        gate_x = jax.nn.sigmoid(self.gate_x(u))
        log_modulus = -GATE_POWER * gate_a * jax.nn.softplus(self.lam)
        phase = self.theta * gate_a
        modulus = jnp.exp(log_modulus)
        a = Complex(modulus * jnp.cos(phase), modulus * jnp.sin(phase))
        # 1 - |a|^2 via expm1 keeps precision when |a| is close to 1.
        normaliser = sqrt_bounded_derivative(-jnp.expm1(2.0 * log_modulus), MAX_SQRT_GRADIENT)
        half = self.lru_width // 2
        b = Complex(u[..., :half], u[..., half:]).scale(normaliser * gate_x)
        return a, b

    def _output(self, h: Complex) -> jax.Array:
        return self.out_proj(jnp.concatenate([h.re, h.im], axis=-1))

    def __call__(
        self,
        x: Float[Array, "batch time width"],
        state: CGLRUState | None = None,
        length: jax.Array | int | None = None,
    ) -> tuple[Float[Array, "batch time width"], CGLRUState]:
        """Parallel over time.

        Args:
          x: [B, T, d].
          state: state before step 0 (zero if None).
          length: int32 [], the number of valid steps (default T); steps after it are
            padding, which the causal scan keeps out of the returned state.

        Returns:
          (y [B, T, d], state after step length - 1).
        """
        a, b = self._coefficients(x)
        h, a_cum = linear_scan(a, b, None if state is None else state.h, self.scan_impl)
        if self.sequence_axis is not None:
            h = fold_across_shards(h, a_cum, self.sequence_axis)
        last = x.shape[1] - 1 if length is None else length - 1
        h_last = jax.tree.map(lambda part: jax.lax.dynamic_index_in_dim(part, last, 1, False), h)
        return self._output(h), CGLRUState(h_last)

    def step(self, x: Float[Array, "batch width"], state: CGLRUState) -> tuple[Float[Array, "batch width"], CGLRUState]:
        """One step: x [B, d] -> (y [B, d], next state)."""
        a, b = self._coefficients(x)
        h = linear_step(a, b, state.h)
        return self._output(h), CGLRUState(h)
