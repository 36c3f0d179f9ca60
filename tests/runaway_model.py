"""A model built to run away: it falls into digital silence at random and never leaves it
(tests/test_watchdog.py, tests/test_app.py)."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from engine import model, mulaw
from engine.checkpoint import ModelCheckpoint

COLLAPSE = mulaw.SILENCE + 1  # decodes to 2e-4 (-75 dBFS): digital silence (START_TOKEN is SILENCE itself)
BAND = range(160, 224)  # what the model below plays while it sounds: 64 classes, 6 bits a sample


def falls_silent(collapse_per_second: float = 0.2) -> ModelCheckpoint:
    """A `tiny` model whose next sample depends only on the last one: after class COLLAPSE it is
    certain of COLLAPSE again (digital silence forever, surprisal ~0); after any other it draws
    uniformly from BAND (loud, 6 bits), or COLLAPSE at `collapse_per_second` on average.

    Every block's and the up-pool's output projection is zeroed, so the network is its learned
    embedding, the final norm and the head; the embedding has two rows, one for COLLAPSE."""
    config = dataclasses.replace(model.preset("tiny"), embedding="learned")
    params = jax.tree_util.tree_map(np.asarray, model.init_params(config, jax.random.key(0)))

    def zero_outputs(tree: dict) -> None:
        for name, child in tree.items():
            if name in ("out_proj", "up_pool"):
                tree[name] = {key: np.zeros_like(value) for key, value in child.items()}
            elif isinstance(child, dict):
                zero_outputs(child)

    zero_outputs(params)
    width = config.widths[0]
    silent, sounding = np.zeros(width, np.float32), np.zeros(width, np.float32)
    silent[:2], sounding[2:4] = (1, -1), (1, -1)  # orthogonal after the (zero-mean) norm
    params["embed"]["table"] = np.where(np.arange(256)[:, None] == COLLAPSE, silent, sounding)
    params["final_norm"] = {key: np.full_like(v, key == "scale") for key, v in params["final_norm"].items()}
    z_silent = (silent - silent.mean()) / silent.std()
    kernel = np.zeros((width, 256), np.float32)
    kernel[:, COLLAPSE] = 40 * z_silent / np.dot(z_silent, z_silent)  # +40 after silence, 0 otherwise
    bias = np.full(256, -40.0, np.float32)
    bias[list(BAND)] = 0.0
    bias[COLLAPSE] = np.log(collapse_per_second / mulaw.SAMPLE_RATE * len(BAND))
    params["head"] = {"kernel": kernel, "bias": bias}
    return ModelCheckpoint(config, params, {"name": "falls-silent"}, path=None)


def longest_run(tokens: np.ndarray, value: int) -> int:
    """Longest run of `value` in int [n]."""
    best = run = 0
    for token in tokens:
        run = run + 1 if token == value else 0
        best = max(best, run)
    return best
