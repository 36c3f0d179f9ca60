"""Shared fixtures. JAX runs on the CPU here; compiled programs are cached per session."""

from __future__ import annotations

import functools
import os
import random
import shutil
import subprocess
import time
from pathlib import Path

import jax
import pytest

from engine import model
from engine.cli import SELF_COMMAND


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
    """What a killed process leaves of an open `app.library.Library`: no finish(), no
    close(); the kernel closes its files, which drops the library's lock."""
    library._db.close()
    library._lock_file.close()


def child_env(base: Path) -> dict:
    """The environment of a `harmonic` child process: CPU JAX, and its compile cache, logs and
    user cache (the plugin scan's) in the folder `base`, shared by the children of one module."""
    return {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "HARMONIC_COMPILE_CACHE": str(base / "jax"),
        "HARMONIC_LOG_DIR": str(base / "log"),
        "XDG_CACHE_HOME": str(base / "cache"),
    }


def run_harmonic(env: dict, *args, timeout: float = 300) -> subprocess.CompletedProcess:
    """`harmonic ARGS` as a child process through this interpreter (engine.cli.SELF_COMMAND:
    the `harmonic` on PATH may belong to another environment), without standard input."""
    command = [*SELF_COMMAND, *map(str, args)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def error_line(proc: subprocess.CompletedProcess) -> str:
    """The one line a command ended with, after checking there is exactly one (progress
    bars aside) and no traceback."""
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.replace("\r", "\n").splitlines() if line.startswith("harmonic ")]
    assert len(lines) == 1, proc.stderr[-3000:]
    return lines[0]


def require(missing: str) -> None:
    """Skips a test whose system tools are missing on a developer's machine; in CI
    (CI=true), where scripts/setup installed them, their absence fails the run instead."""
    if missing:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{missing} (CI must run every test: scripts/setup installs it)", pytrace=False)
        pytest.skip(missing)


@pytest.fixture
def tmpfs():
    """tmpfs(folder, options) mounts a fresh tmpfs on `folder` (created) with mount options
    such as "size=200k" or "size=1m,ro": a real file system that fills up or refuses
    writes. Needs root (CI runs as root); unmounted after the test."""
    mounted = []

    def mount(folder: Path, options: str) -> Path:
        folder.mkdir(parents=True)
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True, text=True
        )
        require(f"cannot mount a tmpfs (root only): {proc.stderr.strip()}" if proc.returncode else "")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", str(folder)], check=True)


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


@pytest.fixture
def xvfb():
    """A fresh Xvfb server (1280x860, 24 bits) for the test; yields its DISPLAY (":N")."""
    require("" if shutil.which("Xvfb") else "Xvfb is not installed (scripts/setup installs it)")
    for _ in range(20):
        display = random.randint(100, 400)
        if not Path(f"/tmp/.X11-unix/X{display}").exists() and not Path(f"/tmp/.X{display}-lock").exists():
            break
    server = subprocess.Popen(
        ["Xvfb", f":{display}", "-screen", "0", "1280x860x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 20
    while not Path(f"/tmp/.X11-unix/X{display}").exists():
        if server.poll() is not None or time.time() > deadline:
            server.kill()
            pytest.fail(f"Xvfb :{display} did not start")
        time.sleep(0.1)
    yield f":{display}"
    server.terminate()
    server.wait(10)
