"""The complex linear recurrence h_t = a_t h_{t-1} + b_t over time (docs/spec.md §3).

Complex numbers are pairs of float32 arrays (`Complex`): associative scans over complex
dtypes compile several times slower, and there is no complex bf16.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp


class Complex(NamedTuple):
    """A complex array as its real and imaginary float arrays of one shape."""

    re: jax.Array
    im: jax.Array

    # Complex arithmetic replaces the tuple's concatenation and repetition on purpose.
    def __mul__(self, other: Complex) -> Complex:  # type: ignore[override]
        return Complex(
            self.re * other.re - self.im * other.im,
            self.re * other.im + self.im * other.re,
        )

    def __add__(self, other: Complex) -> Complex:  # type: ignore[override]
        return Complex(self.re + other.re, self.im + other.im)

    def scale(self, factor: jax.Array) -> Complex:
        """Multiplies by a real array that broadcasts against both parts."""
        return Complex(self.re * factor, self.im * factor)

    @classmethod
    def zeros(cls, shape, dtype=jnp.float32) -> Complex:
        return cls(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype))

    @classmethod
    def ones(cls, shape, dtype=jnp.float32) -> Complex:
        return cls(jnp.ones(shape, dtype), jnp.zeros(shape, dtype))


def _compose(earlier: tuple[Complex, Complex], later: tuple[Complex, Complex]):
    """(a1, b1), (a2, b2) -> (a1 a2, a2 b1 + b2): apply step 1, then step 2."""
    a1, b1 = earlier
    a2, b2 = later
    return a1 * a2, a2 * b1 + b2


def linear_scan(
    a: Complex, b: Complex, h0: Complex | None = None, impl: str = "associative"
) -> tuple[Complex, Complex]:
    """Runs h_t = a_t h_{t-1} + b_t over axis 1.

    Args:
      a: decay/rotation, parts [B, T, N].
      b: input, parts [B, T, N].
      h0: state before step 0, parts [B, N]; zero if None.
      impl: "associative" (log-depth `lax.associative_scan`) or "sequential"
        (`lax.scan` unrolled in blocks of 16 steps).

    Returns:
      (h, a_cum): h parts [B, T, N], the state after each step; a_cum parts [B, T, N],
      the running product a_1 ... a_t, which context parallelism uses to fold in an
      initial state known only later (h_t += a_cum_t h0). Unused results are removed by
      XLA.
    """
    if h0 is not None:
        first = Complex(b.re[:, 0], b.im[:, 0]) + Complex(a.re[:, 0], a.im[:, 0]) * h0
        b = Complex(b.re.at[:, 0].set(first.re), b.im.at[:, 0].set(first.im))
    if impl == "associative":
        a_cum, h = jax.lax.associative_scan(_compose, (a, b), axis=1)
        return h, a_cum
    if impl == "sequential":

        def step(carry, ab):
            carry = _compose(carry, ab)
            return carry, carry

        # Built from a's first step (not fresh constants) so that inside shard_map the
        # carry has the same varying-axes type as the body's output.
        zero = jnp.zeros_like(a.re[:, 0])
        init = (Complex(zero + 1, zero), Complex(zero, zero))
        time_major = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), (a, b))
        _, (a_cum, h) = jax.lax.scan(step, init, time_major, unroll=16)
        return jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), (h, a_cum))
    raise ValueError(f"unknown scan implementation {impl!r}")


def linear_step(a: Complex, b: Complex, h: Complex) -> Complex:
    """One step h' = a h + b; all parts [B, N]."""
    return a * h + b


def fold_across_shards(h: Complex, a_cum: Complex, axis_name: str) -> Complex:
    """Corrects a chunk's zero-state scan for the chunks before it (docs/spec.md §7).

    Must run inside `shard_map` with the time axis split into contiguous chunks over the
    mesh axis `axis_name`. One all-gather shares each chunk's (final state, total
    product of a), two [B, N] complex arrays, so traffic is independent of length.

    Args:
      h: parts [B, T_chunk, N], this chunk's scan from a zero state.
      a_cum: parts [B, T_chunk, N], this chunk's running product of a.
      axis_name: the mesh axis the time dimension is split over.

    Returns:
      parts [B, T_chunk, N]: the states of the unsplit scan.
    """
    last = jax.tree.map(lambda x: x[:, -1], (h, a_cum))
    # gathered parts: [P, B, N] for the P chunks in time order.
    h_last, a_total = jax.lax.all_gather(last, axis_name)
    index = jax.lax.axis_index(axis_name)
    h0 = Complex.zeros(h_last.re.shape[1:], h_last.re.dtype)
    for chunk in range(h_last.re.shape[0]):
        folded = Complex(a_total.re[chunk], a_total.im[chunk]) * h0 + Complex(h_last.re[chunk], h_last.im[chunk])
        before_me = chunk < index
        h0 = jax.tree.map(functools.partial(jnp.where, before_me), folded, h0)
    correction = a_cum * Complex(h0.re[:, None], h0.im[:, None])
    return h + correction
