"""Causal down- and up-pooling with feature groups (docs/spec.md §5).

DownPool by p: a strided conv with kernel = stride = p and p - 1 steps of left padding,
so pooled step j sees inputs jp - p + 1 .. jp. UpPool by p: a transposed conv whose
output t reads only pooled step floor(t / p). With the model's input shifted right by
one, the U-Net is causal without any further shift.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from engine.halo import pad_left, window_before


class DownPool(nn.Module):
    """[B, T, w_in] -> [B, ceil(T / p), w_out], grouped."""

    features_in: int
    features_out: int
    factor: int
    groups: int
    sequence_axis: str | None = None

    def setup(self):
        g = self.groups
        self.kernel = self.param(
            "kernel",
            nn.initializers.lecun_normal(in_axis=(0, 2), out_axis=3, batch_axis=(1,)),
            (self.factor, g, self.features_in // g, self.features_out // g),
        )
        self.bias = self.param("bias", nn.initializers.zeros, (self.features_out,))

    def pool(self, windows: Float[Array, "*batch pool width_in"]) -> Float[Array, "*batch width_out"]:
        """windows [..., p, w_in] (oldest first) -> pooled [..., w_out]."""
        g = self.groups
        grouped = windows.reshape(windows.shape[:-1] + (g, self.features_in // g))
        y = jnp.einsum("...kgi,kgio->...go", grouped, self.kernel)
        return y.reshape(y.shape[:-2] + (self.features_out,)) + self.bias

    def __call__(
        self,
        x: Float[Array, "batch time width_in"],
        length: jax.Array | int,
        window: Float[Array, "batch window width_in"] | None = None,
    ) -> tuple[Float[Array, "batch pooled width_out"], Float[Array, "batch window width_in"]]:
        """Parallel over time.

        Args:
          x: [B, T, w_in], any T >= 1; step 0 must be a pooling boundary (a multiple of p
            steps into the sequence), so pooled step j still sees x[jp - p + 1 .. jp].
          length: int32 [], number of valid steps of x.
          window: [B, p - 1, w_in], the inputs before step 0 when x continues a sequence
            (the window returned for the part before); None for the zero padding.

        Returns:
          (pooled [B, ceil(T / p), w_out], window [B, p - 1, w_in]): the p - 1 inputs
          before step `length`, which the one-step path keeps to build its next window.
        """
        p = self.factor
        steps = math.ceil(x.shape[1] / p)
        padded = pad_left(x, p - 1, self.sequence_axis, window)
        # Pooled step j reads padded[j p : j p + p]; padded holds at least steps * p.
        windows = padded[:, : steps * p].reshape(x.shape[0], steps, p, x.shape[2])
        return self.pool(windows), window_before(padded, p - 1, length)

    @staticmethod
    def push(
        window: Float[Array, "batch window width_in"], x: Float[Array, "batch width_in"]
    ) -> tuple[Float[Array, "batch pool width_in"], Float[Array, "batch window width_in"]]:
        """Adds one input to the buffered window.

        Args:
          window: [B, p - 1, w_in], the last p - 1 inputs.
          x: [B, w_in], the newest input.

        Returns:
          (full window [B, p, w_in] for `pool` if it fires now, next buffer [B, p - 1, w_in]).
        """
        full = jnp.concatenate([window, x[:, None]], axis=1)
        return full, full[:, 1:]


class UpPool(nn.Module):
    """[B, J, w_in] -> [B, J * p, w_out]: pooled step j feeds outputs jp .. jp + p - 1."""

    features_in: int
    features_out: int
    factor: int
    groups: int

    def setup(self):
        g = self.groups
        self.kernel = self.param(
            "kernel",
            nn.initializers.lecun_normal(in_axis=2, out_axis=3, batch_axis=(0, 1)),
            (self.factor, g, self.features_in // g, self.features_out // g),
        )
        self.bias = self.param("bias", nn.initializers.zeros, (self.factor, self.features_out))

    def expand(self, z: Float[Array, "*batch width_in"]) -> Float[Array, "*batch pool width_out"]:
        """z [..., w_in] -> [..., p, w_out], the p outputs of one pooled step."""
        g = self.groups
        grouped = z.reshape(z.shape[:-1] + (g, self.features_in // g))
        y = jnp.einsum("...gi,kgio->...kgo", grouped, self.kernel)
        return y.reshape(y.shape[:-2] + (self.features_out,)) + self.bias

    def __call__(self, z: Float[Array, "batch pooled width_in"]) -> Float[Array, "batch time width_out"]:
        """z [B, J, w_in] -> [B, J * p, w_out]."""
        y = self.expand(z)
        return y.reshape(z.shape[0], z.shape[1] * self.factor, self.features_out)
