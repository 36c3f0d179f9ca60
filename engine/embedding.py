"""Input embeddings of mu-law tokens (docs/spec.md §2)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from engine.mulaw import NUM_CLASSES


def sinusoidal_table(width: int) -> np.ndarray:
    """[256, width] float32: row v = [cos(v f), sin(v f)], f_k = 10000^(-k / (width/2))."""
    half = width // 2
    freqs = np.exp(-np.log(10000.0) * np.arange(half) / half)
    angles = np.arange(NUM_CLASSES)[:, None] * freqs[None, :]
    return np.concatenate([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)


class TokenEmbedding(nn.Module):
    """tokens int32 [...] -> [..., width]; fixed sinusoidal or a learned table."""

    width: int
    kind: str = "sinusoidal"

    def setup(self):
        if self.kind == "learned":
            self.table = self.param("table", nn.initializers.normal(stddev=1.0), (NUM_CLASSES, self.width))
        else:
            self.table = jnp.asarray(sinusoidal_table(self.width))

    def __call__(self, tokens: jax.Array) -> jax.Array:
        return jnp.take(self.table, tokens, axis=0)
