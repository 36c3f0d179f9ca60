"""What a take sounds like, in numbers any model's audio can be held against real clips by.

Every measure is computed per non-overlapping 50 ms frame (800 samples at 16 kHz) of
audio in [-1, 1] (docs/model.md, "Sample-quality measures"):

- DC: the frame's mean. AC RMS: the RMS of the frame minus its mean, in dBFS.
- silent: AC RMS below -50 dBFS. "RMS while sounding": the mean AC RMS of the others.
- flatness: geometric over arithmetic mean of the Hann-windowed power spectrum of the
  mean-removed frame, DC bin left out; a sounding frame flatter than 0.3 is noise-like.
- salience: the largest normalised autocorrelation of the mean-removed frame over lags
  of 32-320 samples (2-20 ms: pitches of 50-500 Hz), averaged over sounding frames.
"""

from __future__ import annotations

import dataclasses

import numpy as np

FRAME = 800
SILENT_DB = -50.0
NOISE_FLATNESS = 0.3
LAGS = (32, 320)


@dataclasses.dataclass(frozen=True)
class AudioMeasures:
    seconds: float
    silent_fraction: float
    rms_sounding_db: float
    noise_like_fraction: float  # of sounding frames
    dc: float
    salience: float

    def row(self) -> list[str]:
        return [
            f"{self.seconds:.1f}",
            f"{self.silent_fraction:.0%}",
            f"{self.rms_sounding_db:.1f}",
            f"{self.noise_like_fraction:.1%}",
            f"{self.dc:+.4f}",
            f"{self.salience:.2f}",
        ]


HEADER = ["seconds", "silent", "RMS while sounding (dBFS)", "noise-like", "mean DC", "pitch salience"]


def frames(audio: np.ndarray) -> np.ndarray:
    """float [T] -> float64 [T // FRAME, FRAME] (a last partial frame is dropped)."""
    audio = np.asarray(audio, np.float64).ravel()
    return audio[: len(audio) // FRAME * FRAME].reshape(-1, FRAME)


def flatness(ac: np.ndarray) -> np.ndarray:
    """Spectral flatness of mean-removed frames [N, FRAME] -> [N]."""
    power = np.abs(np.fft.rfft(ac * np.hanning(FRAME), axis=1))[:, 1:] ** 2 + 1e-20
    return np.exp(np.mean(np.log(power), axis=1)) / np.mean(power, axis=1)


def salience(ac: np.ndarray) -> np.ndarray:
    """Largest normalised autocorrelation over lags 32..320 of frames [N, FRAME] -> [N]."""
    best = np.zeros(len(ac))
    for lag in range(LAGS[0], LAGS[1] + 1):
        a, b = ac[:, :-lag], ac[:, lag:]
        r = np.sum(a * b, axis=1) / np.sqrt(np.sum(a * a, axis=1) * np.sum(b * b, axis=1) + 1e-20)
        best = np.maximum(best, r)
    return best


def measure(audio: np.ndarray, rate: int = 16_000) -> AudioMeasures:
    """The measures of one mono clip or take (float in [-1, 1] at 16 kHz)."""
    framed = frames(audio)
    if not len(framed):
        raise ValueError("shorter than one 50 ms frame")
    dc = framed.mean(axis=1, keepdims=True)
    ac = framed - dc
    rms_db = 20 * np.log10(np.sqrt(np.mean(ac**2, axis=1)) + 1e-12)
    sounding = rms_db >= SILENT_DB
    if not sounding.any():
        return AudioMeasures(len(framed) * FRAME / rate, 1.0, float("nan"), 0.0, float(dc.mean()), 0.0)
    loud = ac[sounding]
    return AudioMeasures(
        seconds=len(framed) * FRAME / rate,
        silent_fraction=float(1 - sounding.mean()),
        rms_sounding_db=float(rms_db[sounding].mean()),
        noise_like_fraction=float(np.mean(flatness(loud) > NOISE_FLATNESS)),
        dc=float(dc.mean()),
        salience=float(salience(loud).mean()),
    )
