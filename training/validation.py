"""Held-out NLL in bits per sample, over a mesh, for validation during training and
for `harmonic eval`."""

from __future__ import annotations

import jax
from tqdm import tqdm

from training.data.loader import Split, eval_batches
from training.loss import sharded_nll
from training.mesh import batch_sharding


def make_eval_fn(config, mesh):
    """jit(params, tokens int32 [B, T], mask [B, T]) -> (NLL bits summed over mask, count)."""
    return jax.jit(lambda params, tokens, mask: sharded_nll(params, config, tokens, mask, mesh))


def evaluate_split(
    eval_fn, params, split: Split, mesh, batch_size: int, multiple: int, max_clips: int = 0, progress: bool = False
) -> float:
    """Mean NLL in bits per sample over the unpadded samples of (part of) a split."""
    sharding = batch_sharding(mesh)
    total, count = 0.0, 0.0
    n = len(split) if not max_clips else min(max_clips, len(split))
    batches = eval_batches(split, batch_size, multiple, max_clips)
    for tokens, mask in tqdm(
        batches, total=-(-n // batch_size), desc=f"eval {split.split}", unit="batch", disable=not progress, leave=False
    ):
        s, c = eval_fn(
            params, *(jax.make_array_from_callback(a.shape, sharding, a.__getitem__) for a in (tokens, mask))
        )
        total += float(s)
        count += float(c)
    return total / max(count, 1.0)
