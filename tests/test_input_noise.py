"""Inputs corrupted against clean targets (training/input_noise.py)."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from engine import model
from training.config import ParallelConfig, TrainConfig
from training.input_noise import corrupt
from training.loss import mean_loss
from training.mesh import make_mesh
from training.train_step import init_state, make_optimizer, make_train_step


def test_a_share_of_the_samples_moves_a_few_classes_within_range():
    tokens = jax.random.randint(jax.random.key(0), (4, 20_000), 0, 256).at[:, :100].set(0).at[:, 100:200].set(255)
    moved = np.asarray(corrupt(tokens, jax.random.key(1), 0.2, 3))
    step = moved - np.asarray(tokens)
    inside = np.asarray(tokens)[:, 200:] == np.clip(np.asarray(tokens)[:, 200:], 3, 252)
    assert 0.19 < np.mean(step[:, 200:][inside] != 0) < 0.21  # away from the ends: the rate
    assert np.abs(step).max() == 3 and moved.min() == 0 and moved.max() == 255
    assert abs(np.mean(step[:, 200:][inside] > 0) - np.mean(step[:, 200:][inside] < 0)) < 0.01  # up as often as down
    assert np.array_equal(moved, np.asarray(corrupt(tokens, jax.random.key(1), 0.2, 3)))  # the key decides
    assert np.array_equal(np.asarray(corrupt(tokens, jax.random.key(1), 0.0, 3)), np.asarray(tokens))


def test_the_train_step_feeds_the_model_corrupted_inputs_and_scores_clean_targets():
    config = model.preset("tiny")
    tokens = jax.random.randint(jax.random.key(3), (2, 4 * config.total_pooling), 0, 256)
    mask = np.ones(tokens.shape, np.float32)
    mesh = make_mesh(1, 1, jax.devices()[:1])
    losses = {}
    for rate in (0.0, 0.5):
        train = TrainConfig(preset="tiny", input_noise=rate)
        optimizer = make_optimizer(train)
        step = make_train_step(config, train, mesh, optimizer, ParallelConfig())
        _, metrics = step(init_state(config, train, optimizer), tokens, mask)
        losses[rate] = float(metrics["loss"])
    clean = mean_loss(init_state(config, TrainConfig(preset="tiny"), optimizer)["params"], config, tokens, mask, mesh)
    assert losses[0.0] == pytest.approx(float(clean), rel=1e-5) and abs(losses[0.5] - losses[0.0]) > 1e-3
