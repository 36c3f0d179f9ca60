"""`harmonic measure` on real audio files: each voice of a take apart, or pooled."""

from __future__ import annotations

import subprocess

import numpy as np
import soundfile

from engine.cli import SELF_COMMAND


def measure(*args):
    return subprocess.run([*SELF_COMMAND, "measure", *map(str, args)], capture_output=True, text=True, timeout=300)


def take_of_a_tone_and_a_silence(path):
    """Two voices of 2 s: a 220 Hz tone with three partials at -20 dBFS, and digital silence."""
    t = np.arange(32000) / 16000
    tone = sum(np.sin(2 * np.pi * 220 * k * t) / k for k in (1, 2, 3))
    tone *= 0.1 / np.sqrt(np.mean(tone**2))
    soundfile.write(path, np.stack([tone, np.zeros_like(tone)], axis=1), 16000)


def rows(stdout: str) -> dict[str, list[str]]:
    """The table's rows by name: seconds, silent, RMS, noise-like, DC, salience."""
    table = {}
    for line in stdout.splitlines()[1:]:
        cells = line.split()
        table[" ".join(cells[:-6])] = cells[-6:]
    return table


def test_each_voice_apart_and_pooled(tmp_path):
    take = tmp_path / "take.flac"
    take_of_a_tone_and_a_silence(take)
    result = measure(take)
    assert result.returncode == 0, result.stderr
    voices = rows(result.stdout)
    tone, silence = voices["take.flac voice 1"], voices["take.flac voice 2"]
    assert tone[:3] == ["2.0", "0%", "-20.0"] and float(tone[5]) > 0.9
    assert silence[:2] == ["2.0", "100%"]

    result = measure(take, "--pooled", "--start", 1)
    assert result.returncode == 0, result.stderr
    (pooled,) = rows(result.stdout).values()
    assert pooled[:3] == ["2.0", "50%", "-20.0"]  # two voices of 1 s each, from second 1 on


def test_a_missing_or_too_short_take_is_one_line(tmp_path):
    take = tmp_path / "take.flac"
    take_of_a_tone_and_a_silence(take)
    for args, said in (((tmp_path / "nothing.flac",), "nothing.flac"), ((take, "--start", 2), "take.flac voice 1")):
        result = measure(*args)
        assert result.returncode != 0 and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and said in result.stderr, result.stderr
