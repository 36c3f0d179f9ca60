"""The player, recorder and ring buffers against a fake sound card (no audio server):
the callback only copies, underruns are counted, pause/resume/stop, clear errors."""

from __future__ import annotations

import threading
import time
import types

import numpy as np
import pytest

import engine.audio.player as player_module
import engine.audio.recorder as recorder_module
from engine.audio import AudioUnavailable, DeviceInfo, HistoryBuffer, Player, Recorder, RingBuffer, resolve
from engine.audio import devices as devices_module
from engine.checkpoint import ModelCheckpoint
from engine.generator import GenerationSettings, Generator

DEVICE = DeviceInfo(3, "fake card", "FAKE", 1, 1, 44100.0, True, True)


class FakeStream:
    """Calls `callback` from its own thread like PortAudio, `speed` times faster than real time."""

    def __init__(self, samplerate, blocksize=0, channels=1, callback=None, speed=4.0, input=False, **kwargs):
        self.rate, self.block = samplerate, blocksize or 256
        self.channels, self.callback, self.speed, self.input = channels, callback, speed, input
        self.latency = 0.01
        self.output: list[np.ndarray] = []
        self._running = threading.Event()
        self._thread = None
        self.phase = 0

    def _run(self):
        while self._running.is_set():
            if self.input:
                t = (self.phase + np.arange(self.block)) / self.rate
                self.phase += self.block
                self.callback(np.repeat((0.5 * np.sin(2 * np.pi * 440 * t))[:, None], self.channels, 1).astype(np.float32), self.block, None, None)
            else:
                out = np.full((self.block, self.channels), np.nan, np.float32)
                self.callback(out, self.block, None, None)
                self.output.append(out[:, 0].copy())
            time.sleep(self.block / self.rate / self.speed)

    def start(self):
        self._running.set()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self):
        self._running.clear()
        if self._thread is not None:
            self._thread.join()

    abort = stop

    def close(self):
        self.stop()


@pytest.fixture
def fake_card(monkeypatch):
    streams = []

    def output_stream(**kwargs):
        streams.append(FakeStream(**kwargs))
        return streams[-1]

    def input_stream(**kwargs):
        streams.append(FakeStream(input=True, **kwargs))
        return streams[-1]

    fake = types.SimpleNamespace(OutputStream=output_stream, InputStream=input_stream)
    for module in (player_module, recorder_module):
        monkeypatch.setattr(module, "sounddevice", lambda: fake)
        monkeypatch.setattr(module, "resolve", lambda device, kind: DEVICE)
    monkeypatch.setattr(player_module, "supports_rate", lambda device, kind, rate: rate == 16000)
    monkeypatch.setattr(recorder_module, "supports_rate", lambda device, kind, rate: rate == 44100)
    return streams


def test_ring_buffer_wraps_and_never_overwrites():
    ring = RingBuffer(10)
    assert ring.write(np.arange(7, dtype=np.float32)) == 7
    out = np.zeros(5, np.float32)
    assert ring.read_into(out) == 5 and list(out) == [0, 1, 2, 3, 4]
    assert ring.write(np.arange(7, 20, dtype=np.float32)) == 8  # only 8 free
    out = np.zeros(12, np.float32)
    assert ring.read_into(out) == 10
    np.testing.assert_array_equal(out[:10], [5, 6, 7, 8, 9, 10, 11, 12, 13, 14])
    history = HistoryBuffer(4)
    history.append(np.arange(3, dtype=np.float32))
    history.append(np.arange(3, 6, dtype=np.float32))
    np.testing.assert_array_equal(history.latest(10), [2, 3, 4, 5])


def test_player_plays_every_sample_in_order(fake_card):
    rng = np.random.default_rng(0)
    chunks = [rng.uniform(-1, 1, (2, 800)).astype(np.float32) for _ in range(10)]
    seen = []
    player = Player(iter(chunks), buffer_seconds=0.2, start_seconds=0.1, on_chunk=seen.append)
    player.start()
    assert player.wait(20) and player.state == "finished"
    played = np.concatenate(fake_card[0].output)
    expected = np.concatenate([c.mean(axis=0) for c in chunks])
    np.testing.assert_array_equal(played[: len(expected)], expected)
    assert not np.any(played[len(expected) :])  # silence after the end, not garbage
    assert player.underruns == 0
    assert len(seen) == 10 and player.generated().shape == (2, 8000)
    np.testing.assert_array_equal(player.recent(256), played[-256:])


def test_player_counts_underruns_and_writes_silence(fake_card):
    def slow():
        for _ in range(6):
            time.sleep(0.06)  # 800 samples per 60 ms = 0.83x real time, and the card runs 4x
            yield np.ones(800, np.float32)

    player = Player(slow(), buffer_seconds=0.1, start_seconds=0.05)
    player.start()
    assert player.wait(20)
    played = np.concatenate(fake_card[0].output)
    assert player.underruns > 0 and player.underrun_seconds > 0
    assert np.count_nonzero(played == 1.0) == 4800 and not np.any(np.isnan(played))


def test_player_with_generator_pause_resume_stop(fake_card, preset_params):
    config, params = preset_params("tiny")
    gen = Generator(ModelCheckpoint(config, params, {}, None), GenerationSettings(chunk_ms=20, voices=3))
    player = Player(gen, buffer_seconds=0.2, start_seconds=0.1)
    assert player.state == "idle"
    player.start()
    deadline = time.monotonic() + 120
    while player.state != "playing" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert player.state == "playing"
    player.pause()
    assert player.state == "paused"
    time.sleep(0.5)
    assert player.fill_fraction > 0.7  # the worker filled ahead while paused
    player.resume()
    time.sleep(0.3)
    assert player.state == "playing" and player.played_seconds > 0
    player.stop()
    assert player.state == "stopped" and gen.stopped
    assert player.generated().shape[0] == 3
    rtf = player.realtime_factor
    assert rtf is None or rtf > 0


def test_no_device_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(devices_module, "list_devices", lambda: [])
    with pytest.raises(AudioUnavailable, match="no audio output device found.*harmonic generate --out"):
        resolve(None, "output")
    with pytest.raises(AudioUnavailable, match="no audio input device found"):
        resolve(None, "input")
    monkeypatch.setattr(devices_module, "list_devices", lambda: [DEVICE])
    assert resolve("FAKE card".lower(), "output") == DEVICE and resolve(3, "input") == DEVICE
    with pytest.raises(AudioUnavailable, match="no output device matching"):
        resolve("usb", "output")


def test_recorder_resamples_to_16k_and_reports_level(fake_card):
    recorder = Recorder(max_seconds=0.5)
    recorder.start()
    assert recorder.sample_rate == 44100
    assert recorder.wait(10)
    assert recorder.level == pytest.approx(0.5, abs=0.01)
    assert recorder.level_db == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.5)
    audio = recorder.stop()
    assert audio.dtype == np.float32 and abs(len(audio) - 8000) <= 2
    spectrum = np.abs(np.fft.rfft(audio[1000:7000]))
    assert abs(np.argmax(spectrum) * 16000 / 6000 - 440) < 5
