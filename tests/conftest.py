"""Shared fixtures. JAX runs on the CPU here; compiled programs are cached per session."""

from __future__ import annotations

import functools
import os

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


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, preset_params):
    """A checkpoint of the `tiny` preset with random weights, standing in for the shipped model."""
    from engine.checkpoint import save_model

    config, params = preset_params("tiny")
    path = tmp_path_factory.mktemp("ckpt") / "tiny-test"
    save_model(path, config, params, {"name": "tiny-test", "data": "random weights", "nll": 8.0})
    return path


def crash(library) -> None:
    """What a killed process leaves of an open `engine.library.Library`: no finish(), no
    close(); the kernel closes its files, which drops the library's lock."""
    library._db.close()
    library._lock_file.close()


def require(missing: str) -> None:
    """Skips a test whose system tools are missing on a developer's machine; in CI
    (CI=true), where scripts/setup installed them, their absence fails the run instead."""
    if missing:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{missing} (CI must run every test: scripts/setup installs it)", pytrace=False)
        pytest.skip(missing)


@pytest.fixture(scope="session")
def pulse_server(tmp_path_factory):
    """A private PulseAudio server with null sinks (see tests/pulse.py); skipped when
    pulseaudio is not installed (scripts/setup installs it)."""
    import pulse  # tests/pulse.py (tests/ is on sys.path: rootless conftest)

    missing = pulse.available()
    require(f"PulseAudio tools missing: {missing}" if missing else "")
    server = pulse.PulseServer(tmp_path_factory.mktemp("pulse")).start()
    yield server
    server.stop()
