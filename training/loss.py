"""The training loss: masked NLL in bits per sample over a ("data", "seq") mesh.

The batch is split over "data" and the time axis over "seq" in contiguous chunks
(context parallelism, docs/spec.md §7). Inside `jax.shard_map` every device runs
`engine.model.forward(..., sequence_axis="seq")` on its chunk: the model exchanges
left-context halos with `ppermute` (input shift, pooling windows) and each CG-LRU folds
the chunks before it in with one all-gather. The masked NLL sums and counts are
`psum`med over both axes, so the loss is the global mean.

Gradients are taken *outside* the shard_map of the psum'd mean: JAX transposes psum,
all_gather and ppermute itself, and the replicated params get their cotangents summed
over the mesh. `tests/test_parallel.py` checks loss and gradients against one device.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from engine import model
from training.mesh import AXES

LN2 = math.log(2.0)


def token_nll(logits: jax.Array, tokens: jax.Array) -> jax.Array:
    """Negative log-likelihood in nats of each token: logits [..., 256], tokens int
    [...] -> [...]."""
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.take_along_axis(logp, tokens[..., None], axis=-1)[..., 0]


def masked_nll_bits(params, config, tokens, mask, dropout_key=None, sequence_axis=None, remat=False, inputs=None):
    """(sum of NLL bits over mask, count) of one [B, T] batch (or one shard of it): the model
    reads `inputs` (default: the tokens themselves; `training.input_noise`) and predicts `tokens`."""
    inputs = tokens if inputs is None else inputs
    logits = model.forward(params, config, inputs, dropout_key, sequence_axis=sequence_axis, remat=remat)
    mask = mask.astype(jnp.float32)
    return jnp.sum(token_nll(logits, tokens) * mask) / LN2, jnp.sum(mask)


def sharded_nll(params, config, tokens, mask, mesh: Mesh, dropout_key=None, remat: bool = False, inputs=None):
    """(sum of NLL in bits over unmasked positions, their count) for the global batch.

    tokens int32 [B, T], mask [B, T] and inputs (int32 [B, T] or None: the tokens) are split
    P("data", "seq"); params are replicated.
    """
    inputs = tokens if inputs is None else inputs
    if mesh.shape["seq"] == 1:
        # No context parallelism: a plain jit over the batch-sharded arrays (XLA's SPMD
        # partitioner splits the batch); the same numbers, and it compiles several times
        # faster than the shard_map path.
        batch = NamedSharding(mesh, P("data", None))
        tokens, mask, inputs = (jax.lax.with_sharding_constraint(a, batch) for a in (tokens, mask, inputs))
        return masked_nll_bits(params, config, tokens, mask, dropout_key, remat=remat, inputs=inputs)
    has_key = dropout_key is not None

    def local(params, tokens, mask, inputs, *key):
        key = key[0] if has_key else None
        if key is not None:  # each shard drops out other units
            key = jax.random.fold_in(
                key, jax.lax.axis_index("data") * jax.lax.axis_size("seq") + jax.lax.axis_index("seq")
            )
        total, count = masked_nll_bits(params, config, tokens, mask, key, "seq", remat, inputs)
        return jax.lax.psum(total, AXES), jax.lax.psum(count, AXES)

    in_specs = (P(), P("data", "seq"), P("data", "seq"), P("data", "seq")) + ((P(),) if has_key else ())
    fn = jax.shard_map(local, mesh=mesh, in_specs=in_specs, out_specs=(P(), P()))
    return fn(params, tokens, mask, inputs, *((dropout_key,) if has_key else ()))


def mean_loss(params, config, tokens, mask, mesh, dropout_key=None, remat=False, inputs=None):
    """Mean NLL in bits per sample over unmasked positions (differentiable)."""
    total, count = sharded_nll(params, config, tokens, mask, mesh, dropout_key, remat, inputs)
    return total / jnp.maximum(count, 1.0)
