"""Shared fixtures. JAX runs on the CPU here; compiled programs are cached per session."""

from __future__ import annotations

import functools

import jax
import pytest

from engine import model


@functools.cache
def _params(preset_name: str, seed: int = 0):
    config = model.preset(preset_name)
    return config, model.init_params(config, jax.random.key(seed))


@pytest.fixture(scope="session")
def preset_params():
    """preset_params(name) -> (config, random params), initialised once per session."""
    return _params
