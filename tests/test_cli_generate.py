"""`harmonic generate` / `play` / `devices` / `bench` from the command line (in process)."""

from __future__ import annotations

import os
import subprocess

import numpy as np
import pytest
import soundfile

from engine import cli
from engine.audio import devices as devices_module
from engine.checkpoint import save_model
from engine.cli import SELF_COMMAND


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, preset_params):
    config, params = preset_params("tiny")
    return str(save_model(tmp_path_factory.mktemp("ckpt") / "tiny", config, params, {"name": "tiny-test"}))


@pytest.fixture(autouse=True)
def no_compile_cache(monkeypatch):
    monkeypatch.setenv("HARMONIC_COMPILE_CACHE", "off")  # keep the test process's JAX config alone


def test_generate_wav_and_flac_reproducibly(checkpoint, tmp_path, capsys):
    args = [
        "generate",
        "--checkpoint",
        checkpoint,
        "--seconds",
        "0.2",
        "--seed",
        "9",
        "--voices",
        "3",
        "--chunk-ms",
        "20",
    ]
    assert cli.main(args + ["--out", str(tmp_path / "a.wav")]) == 0
    out = capsys.readouterr().out
    assert "seed 9" in out and "real-time factor" in out
    assert cli.main(args + ["--out", str(tmp_path / "b.flac")]) == 0
    a, rate = soundfile.read(tmp_path / "a.wav", dtype="float32")
    b, _ = soundfile.read(tmp_path / "b.flac", dtype="float32")
    assert rate == 16000 and a.shape == (3200, 3) == b.shape
    np.testing.assert_allclose(a, b, atol=1e-6)  # same seed, same take (FLAC is 24-bit)
    assert not np.array_equal(a[:, 0], a[:, 1])


def test_generate_without_effects_needs_no_pedalboard(checkpoint, tmp_path):
    """The engine generates on a machine without the plugin host's library (a GPU machine
    measuring a take): only --fx loads pedalboard. None in sys.modules fails its import."""
    command = "import sys; sys.modules['pedalboard'] = None; from engine.cli import main; sys.exit(main())"
    take = tmp_path / "take.wav"
    result = subprocess.run(
        [SELF_COMMAND[0], "-c", command, "generate", "--checkpoint", checkpoint, "--seconds", "0.1", "--out", take],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HARMONIC_COMPILE_CACHE": "off"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert soundfile.info(take).frames == 1600


def test_generate_with_prime_file(checkpoint, tmp_path):
    # Shapes shared with tests/test_generator.py, so a whole-suite run compiles once.
    seed = 0.3 * np.sin(np.arange(4134) * 2 * np.pi * 220 / 44100)  # -> 1500 samples at 16 kHz
    soundfile.write(tmp_path / "seed.wav", seed, 44100)
    assert (
        cli.main(
            [
                "generate",
                "--checkpoint",
                checkpoint,
                "--seconds",
                "0.1",
                "--prime",
                str(tmp_path / "seed.wav"),
                "--with-prime",
                "--chunk-ms",
                "10",
                "--out",
                str(tmp_path / "p.wav"),
            ]
        )
        == 0
    )
    audio, _ = soundfile.read(tmp_path / "p.wav", dtype="float32")
    n = len(audio) - 1600
    assert abs(n - 1500) <= 1
    # The seed comes first, resampled to 16 kHz: still a 220 Hz tone.
    assert np.argmax(np.abs(np.fft.rfft(audio[:n]))) * 16000 / n == pytest.approx(220, abs=12)
    assert audio[:n].max() > 0.9  # min-max scaled to full range


def test_user_errors_are_clear(checkpoint, tmp_path, capsys, monkeypatch):
    assert cli.main(["generate", "--checkpoint", str(tmp_path / "nope"), "--out", str(tmp_path / "x.wav")]) == 2
    assert "no checkpoint at" in capsys.readouterr().err
    assert cli.main(["generate", "--checkpoint", checkpoint, "--out", str(tmp_path / "x.mp3")]) == 2
    assert ".wav or .flac" in capsys.readouterr().err
    assert cli.main(["generate", "--checkpoint", checkpoint, "--top-p", "1.5", "--out", str(tmp_path / "x.wav")]) == 2
    assert "top-p" in capsys.readouterr().err
    monkeypatch.setattr(devices_module, "list_devices", lambda: [])
    assert cli.main(["play", "--checkpoint", checkpoint]) == 2
    assert "no audio output device found" in capsys.readouterr().err
    assert cli.main(["devices"]) == 0
    assert "no audio devices found" in capsys.readouterr().out


def test_bench_prints_the_table(capsys):
    assert cli.main(["bench", "--presets", "tiny", "--batches", "1", "--seconds", "0.2", "--no-startup"]) == 0
    out = capsys.readouterr().out
    assert "samples/s" in out and "preset tiny" in out


def test_warmup_fills_the_compile_caches(checkpoint, tmp_path, capsys):
    """`harmonic warmup` in a fresh process leaves the kernel compiled in numba's cache
    folder, where the next process loads it instead of compiling."""
    caches = tmp_path / "caches"
    env = dict(os.environ, HARMONIC_COMPILE_CACHE=str(caches / "jax"), NUMBA_CACHE_DIR=str(caches / "numba"))
    command = [*SELF_COMMAND, "warmup", "--checkpoint", checkpoint]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "compiled the kernel programs of tiny-test" in proc.stdout
    assert list((caches / "numba").rglob("*.nbi")) and list((caches / "numba").rglob("*.nbc"))
    assert cli.main(["warmup", "--checkpoint", str(tmp_path / "missing")]) == 2
    assert "no checkpoint at" in capsys.readouterr().err
