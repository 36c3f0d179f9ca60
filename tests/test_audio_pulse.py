"""End to end through a real sound server (a private PulseAudio with null sinks):
`harmonic play` delivers the generated samples to the speaker sink without underruns,
and `--prime-mic` records the microphone source and seeds the generator with it."""

from __future__ import annotations

import re
import subprocess
import time

import numpy as np
import pulse
import pytest
import soundfile

from engine.checkpoint import save_model
from engine.cli import SELF_COMMAND

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory, preset_params):
    config, params = preset_params("tiny")
    return save_model(tmp_path_factory.mktemp("ckpt") / "tiny", config, params, {"name": "tiny-test"})


@pytest.fixture(scope="module")
def env(pulse_server, tmp_path_factory):
    # A compile cache private to this module: the play and the mic test share programs.
    return dict(pulse_server.env, HARMONIC_COMPILE_CACHE=str(tmp_path_factory.mktemp("jaxcache")), JAX_PLATFORMS="cpu")


def harmonic(args, env, timeout=300):
    command = [*SELF_COMMAND, *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def test_devices_lists_the_pulse_device(env):
    result = harmonic(["devices"], env)
    assert result.returncode == 0, result.stderr
    assert re.search(r"pulse|default", result.stdout), result.stdout


def test_play_delivers_generated_audio_to_the_sink(pulse_server, env, tiny_checkpoint, tmp_path):
    raw = tmp_path / "speaker.raw"
    saved = tmp_path / "generated.wav"
    recorder = pulse_server.record_speaker(raw)
    time.sleep(0.5)
    try:
        result = harmonic(
            [
                "play",
                "--checkpoint",
                str(tiny_checkpoint),
                "--seconds",
                "3",
                "--seed",
                "5",
                "--buffer",
                "1.5",
                "--prefill",
                "1.0",
                "--save",
                str(saved),
            ],
            env,
        )
        time.sleep(0.5)
    finally:
        recorder.terminate()
        recorder.wait(10)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout.strip().splitlines()[-2]
    assert "underruns: 0" in summary, result.stdout
    generated, rate = soundfile.read(saved, dtype="float32")
    assert rate == 16000 and generated.shape == (48000,)
    assert generated.std() > 0.01, "the random model should make audible noise"
    recorded = np.fromfile(raw, dtype="<f4")
    assert len(recorded) >= 48000, f"the monitor recorded only {len(recorded)} samples"
    # A null sink's monitor misses the first ~10-20 ms of a new stream (the sink had
    # already rendered that far ahead and rewinds; the monitor cannot), so align on the
    # audio after the first 50 ms and require all of that to arrive unchanged.
    head = 800
    lag, correlation = pulse.align(generated[head:], recorded)
    assert correlation > 0.99, (lag, correlation)
    np.testing.assert_allclose(recorded[lag : lag + 48000 - head], generated[head:], atol=2e-3)


def test_prime_mic_records_the_source_and_seeds_the_take(pulse_server, env, tiny_checkpoint, tmp_path):
    rng = np.random.default_rng(0)
    known = (0.4 * rng.standard_normal(16000 * 30)).clip(-1, 1).astype(np.float32)  # 30 s, never repeats
    known_path = tmp_path / "known.wav"
    soundfile.write(known_path, known, 16000, subtype="FLOAT")
    player = pulse_server.play_into_mic(known_path)
    out = tmp_path / "primed.wav"
    try:
        time.sleep(0.5)
        result = harmonic(
            [
                "generate",
                "--checkpoint",
                str(tiny_checkpoint),
                "--prime-mic",
                "1.0",
                "--with-prime",
                "--seconds",
                "0.1",
                "--seed",
                "2",
                "--out",
                str(out),
            ],
            env,
        )
    finally:
        player.terminate()
        player.wait(10)
    assert result.returncode == 0, result.stdout + result.stderr
    audio, _ = soundfile.read(out, dtype="float32")
    assert audio.shape == (16000 + 1600,)
    seed = audio[:16000]
    lag, correlation = pulse.align(seed - seed.mean(), known)
    # The seed is min-max scaled and mu-law quantised: not identical, but unmistakable.
    assert correlation > 0.9, (lag, correlation)
