"""The player, recorder and ring buffers against a real sound server: a private
PulseAudio with null sinks (tests/pulse.py). Each scenario runs in a subprocess with the
server's environment, so PortAudio enumerates its devices, and reports JSON back while
`parec` records what reached the speaker sink."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import numpy as np
import pulse
import pytest
import soundfile

from engine.audio import AudioUnavailable, DeviceInfo, RingBuffer, resolve

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def env(pulse_server, tmp_path_factory):
    return dict(pulse_server.env, HARMONIC_COMPILE_CACHE=str(tmp_path_factory.mktemp("jaxcache")), JAX_PLATFORMS="cpu")


def run_scenario(code: str, env: dict, timeout: float = 300) -> dict:
    """Runs `code` (which ends by printing one JSON line) in a fresh interpreter."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def recorded_while(pulse_server, tmp_path, action):
    """Runs action() while recording the speaker sink; returns (action's result, samples)."""
    raw = tmp_path / "speaker.raw"
    recorder = pulse_server.record_speaker(raw)
    time.sleep(0.5)
    try:
        result = action()
        time.sleep(3.0)  # the null sink plays a new stream ~1.6-1.9 s late; wait for the tail
    finally:
        recorder.terminate()
        recorder.wait(10)
    return result, np.fromfile(raw, dtype="<f4")


def test_ring_buffer_wraps_and_never_overwrites():
    ring = RingBuffer(10)
    assert ring.write(np.arange(7, dtype=np.float32)) == 7
    out = np.zeros(5, np.float32)
    assert ring.read_into(out) == 5 and list(out) == [0, 1, 2, 3, 4]
    assert ring.write(np.arange(7, 20, dtype=np.float32)) == 8  # only 8 free
    out = np.zeros(12, np.float32)
    assert ring.read_into(out) == 10
    np.testing.assert_array_equal(out[:10], [5, 6, 7, 8, 9, 10, 11, 12, 13, 14])


def test_tap_ring_overwrites_and_reads_by_position():
    tap = RingBuffer(4, overwrite=True)
    assert tap.write(np.arange(3, dtype=np.float32)) == 3
    assert tap.write(np.arange(3, 9, dtype=np.float32)) == 6  # never waits: the oldest go
    np.testing.assert_array_equal(tap.latest(6), [0, 0, 5, 6, 7, 8])  # gone or never written: zeros
    np.testing.assert_array_equal(tap.latest(2, end=7), [5, 6])
    new, position = tap.read_since(2)  # a reader that fell behind gets the newest capacity
    np.testing.assert_array_equal(new, [5, 6, 7, 8])
    assert position == 9
    new, position = tap.read_since(position)
    assert new.size == 0 and position == 9
    tap.write(np.array([9, 10], np.float32))
    new, position = tap.read_since(position, end=10)  # up to what was heard
    np.testing.assert_array_equal(new, [9])
    assert position == 10


def test_player_plays_every_sample_in_order(pulse_server, env, tmp_path):
    code = """
        import json, numpy as np
        from engine.audio import Player, Stage
        rng = np.random.default_rng(0)
        chunks = [rng.uniform(-1, 1, (2, 800)).astype(np.float32) for _ in range(30)]
        seen = []
        player = Player(iter(chunks), buffer_seconds=0.5, start_seconds=0.4, stage=Stage(on_chunk=seen.append))
        player.start()
        assert player.wait(30)
        print(json.dumps({"state": player.state, "underruns": player.underruns, "seen": len(seen),
                          "heard": player.heard_samples, "generated": list(player.generated().shape),
                          "program": player.program.latest(24000).tolist()}))
    """
    report, recorded = recorded_while(pulse_server, tmp_path, lambda: run_scenario(code, env))
    assert report["state"] == "finished" and report["underruns"] == 0
    assert report["seen"] == 30 and report["generated"] == [2, 24000]
    assert report["heard"] == 24000  # taken by the card: every sample
    rng = np.random.default_rng(0)
    expected = np.concatenate([rng.uniform(-1, 1, (2, 800)).astype(np.float32).mean(axis=0) for _ in range(30)])
    np.testing.assert_array_equal(report["program"], expected)  # the program tap: what went to the card
    head = 1600  # a null sink's monitor misses the first ~20-70 ms of a new stream
    lag, correlation = pulse.align(expected[head:], recorded)
    assert correlation > 0.99, (lag, correlation)
    np.testing.assert_allclose(recorded[lag : lag + len(expected) - head], expected[head:], atol=2e-3)


def test_player_counts_underruns_and_plays_silence_meanwhile(pulse_server, env, tmp_path):
    code = """
        import json, time, numpy as np
        from engine.audio import Player
        def slow():  # 800 samples per 80 ms: 0.62x real time
            for _ in range(15):
                time.sleep(0.08)
                yield np.full(800, 0.5, np.float32)
        player = Player(slow(), buffer_seconds=0.1, start_seconds=0.05)
        player.start()
        assert player.wait(30)
        print(json.dumps({"underruns": player.underruns, "underrun_seconds": player.underrun_seconds}))
    """
    report, recorded = recorded_while(pulse_server, tmp_path, lambda: run_scenario(code, env))
    assert report["underruns"] > 0 and report["underrun_seconds"] > 0
    assert np.all(np.isfinite(recorded))
    delivered = np.count_nonzero(np.abs(recorded - 0.5) < 1e-3)
    gaps = np.count_nonzero(np.abs(recorded) < 1e-6)
    assert delivered >= 12000 - 1600, delivered  # every generated sample arrives (less the monitor's head)
    assert gaps > 16000 * 0.1  # the starved stretches were filled with silence


def test_player_with_generator_pause_resume_stop(env, tmp_path, preset_params):
    from engine.checkpoint import save_model

    config, params = preset_params("tiny")
    save_model(tmp_path / "tiny", config, params)
    code = f"""
        import json, time
        from engine.audio import Player
        from engine.generator import GenerationSettings, Generator
        gen = Generator({str(tmp_path / "tiny")!r}, GenerationSettings(chunk_ms=20, voices=3))
        player = Player(gen, buffer_seconds=0.3, start_seconds=0.1)
        states = [player.state]
        player.start()
        deadline = time.monotonic() + 200
        while player.state != "playing" and time.monotonic() < deadline:
            time.sleep(0.05)
        states.append(player.state)
        player.pause(); states.append(player.state)
        time.sleep(0.8)
        paused_fill = player.fill_fraction
        player.resume(); time.sleep(0.5); states.append(player.state)
        played = player.played_seconds
        player.stop(); states.append(player.state)
        print(json.dumps({{"states": states, "paused_fill": paused_fill, "played": played, "stopped": gen.stopped,
                          "voices": player.generated().shape[0], "rtf": player.realtime_factor}}))
    """
    report = run_scenario(code, env)
    assert report["states"] == ["idle", "playing", "paused", "playing", "stopped"]
    assert report["paused_fill"] > 0.7  # the worker filled ahead while paused
    assert report["played"] > 0 and report["stopped"] and report["voices"] == 3
    assert report["rtf"] is None or report["rtf"] > 0


def test_recorder_resamples_to_16k_and_reports_level(pulse_server, env, tmp_path):
    t = np.arange(16000 * 20) / 16000
    tone = tmp_path / "tone.wav"
    soundfile.write(tone, (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000, subtype="FLOAT")
    code = """
        import json, numpy as np
        from engine.audio import Recorder
        blocks = []
        recorder = Recorder(max_seconds=1.0, on_block=blocks.append)
        recorder.start()
        assert recorder.wait(20)
        level, level_db, rate = recorder.level, recorder.level_db, recorder.sample_rate
        so_far = len(recorder.recorded_so_far())
        audio = recorder.stop()
        spectrum = np.abs(np.fft.rfft(audio[2000:14000]))
        print(json.dumps({"level": level, "level_db": level_db, "rate": rate, "n": len(audio), "so_far": so_far,
                          "tapped": sum(len(b) for b in blocks),
                          "dtype": str(audio.dtype), "peak_hz": float(np.argmax(spectrum) * 16000 / 12000)}))
    """
    player = pulse_server.play_into_mic(tone)
    time.sleep(0.5)
    try:
        report = run_scenario(code, env)
    finally:
        player.terminate()
        player.wait(10)
    assert report["dtype"] == "float32" and abs(report["n"] - 16000) <= 2, report
    assert report["tapped"] == report["so_far"] == round(report["rate"] * 1.0), report  # every block reached on_block
    assert abs(report["peak_hz"] - 440) < 3, report
    assert report["level"] == pytest.approx(0.5, abs=0.05), report
    assert report["level_db"] == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=1.0), report


DEVICES = [
    DeviceInfo(0, "HDA Intel PCH: ALC892 Analog", "ALSA", 2, 2, 48000.0, False, False),
    DeviceInfo(3, "USB Audio CODEC", "ALSA", 2, 0, 44100.0, True, False),
    DeviceInfo(5, "pulse", "ALSA", 32, 32, 44100.0, False, True),
]


def test_device_choice():
    assert resolve(None, "output", DEVICES).index == 5 and resolve(None, "input", DEVICES).index == 3
    assert resolve("usb", "input", DEVICES).index == 3 and resolve("0", "output", DEVICES).index == 0
    with pytest.raises(AudioUnavailable, match="no output device matching 'usb'"):
        resolve("usb", "output", DEVICES)
    with pytest.raises(AudioUnavailable, match="no audio output device found.*harmonic generate --out"):
        resolve(None, "output", [])
    with pytest.raises(AudioUnavailable, match="no audio input device found"):
        resolve(None, "input", [])
