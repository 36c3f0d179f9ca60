"""Waveform views: a scrolling one for live audio and a static one for a clip."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt6.QtCore import pyqtSignal

from app.views import theme
from engine.mulaw import SAMPLE_RATE as RATE


def envelope(audio: np.ndarray, points: int) -> tuple[np.ndarray, np.ndarray]:
    """Min/max envelope of `audio` in `points` buckets, interleaved for one curve:
    (x indices [2 * points], y [2 * points])."""
    n = audio.size
    points = max(1, min(points, n))
    usable = (n // points) * points
    if usable == 0:
        return np.zeros(0), np.zeros(0)
    chunks = audio[n - usable :].reshape(points, -1)
    y = np.empty(2 * points, np.float32)
    y[0::2], y[1::2] = chunks.min(axis=1), chunks.max(axis=1)
    x = np.repeat(np.arange(points), 2)
    return x, y


class ScrollingWaveform(pg.PlotWidget):
    """The last `seconds` heard; seed audio in the seed audio colour."""

    def __init__(self, seconds: float = 4.0, parent=None):
        super().__init__(parent=parent, background=theme.BACKGROUND)
        self.seconds = seconds
        self.points = 800
        self.frames_drawn = 0  # redraws that showed new data (tests read it)
        self.data = np.zeros(0, np.float32)  # what was drawn last, and which of it is seed audio
        self.seed_audio = np.zeros(0, bool)
        self.setMouseEnabled(False, False)
        self.hideButtons()
        self.setMenuEnabled(False)
        self.setYRange(-1, 1, padding=0.02)
        self.setXRange(0, self.points, padding=0)
        self.getPlotItem().hideAxis("bottom")
        self.getPlotItem().hideAxis("left")
        self.curve = self.plot(pen=pg.mkPen(theme.ACCENT, width=1))
        self.seed_audio_curve = self.plot(pen=pg.mkPen(theme.SEED, width=1), connect="finite")

    @property
    def samples(self) -> int:
        return int(self.seconds * RATE)

    def draw(self, data: np.ndarray, seed_audio: np.ndarray) -> None:
        """data: float32 [samples], the newest audio heard; seed_audio: bool [samples],
        which of it is seed audio."""
        self.data, self.seed_audio = data, seed_audio
        x, y = envelope(data, self.points)
        if x.size == 0:
            return
        tail = seed_audio[data.size - (data.size // self.points) * self.points :]
        seed_mask = np.repeat(tail.reshape(self.points, -1).any(axis=1), 2)
        generated = np.where(seed_mask, np.nan, y)
        seeded = np.where(seed_mask, y, np.nan)
        self.curve.setData(x, generated, connect="finite")
        self.seed_audio_curve.setData(x, seeded, connect="finite")
        self.frames_drawn += 1


class TakeWaveform(pg.PlotWidget):
    """A whole clip with a draggable trim region (for the microphone take and seed audio)."""

    trimChanged = pyqtSignal(int, int)  # start, end sample

    def __init__(self, parent=None):
        super().__init__(parent=parent, background=theme.BACKGROUND)
        self.audio = np.zeros(0, np.float32)
        self.setMouseEnabled(False, False)
        self.hideButtons()
        self.setMenuEnabled(False)
        self.setYRange(-1, 1, padding=0.02)
        self.getPlotItem().hideAxis("left")
        self.getPlotItem().getAxis("bottom").setPen(theme.MUTED)
        self.curve = self.plot(pen=pg.mkPen(theme.SEED, width=1))
        self.region = pg.LinearRegionItem(values=(0, 0), brush=pg.mkBrush(224, 164, 88, 40))
        self.region.setZValue(10)
        self.region.sigRegionChangeFinished.connect(self._region_changed)
        self.addItem(self.region)

    def set_audio(self, audio: np.ndarray) -> None:
        self.audio = np.asarray(audio, np.float32).reshape(-1)
        seconds = self.audio.size / RATE
        x, y = envelope(self.audio, 1000)
        if x.size:
            self.curve.setData(x * (seconds / max(1, x.max() + 1)), y)
        else:
            self.curve.setData([], [])
        self.setXRange(0, max(seconds, 0.1), padding=0)
        self.region.setBounds((0, seconds))
        self.region.setRegion((0, seconds))

    def append_live(self, audio: np.ndarray) -> None:
        """Shows a growing recording without moving the trim region."""
        self.audio = np.asarray(audio, np.float32).reshape(-1)
        seconds = self.audio.size / RATE
        x, y = envelope(self.audio, 1000)
        if x.size:
            self.curve.setData(x * (seconds / max(1, x.max() + 1)), y)
        self.setXRange(0, max(seconds, 1.0), padding=0)

    def trim(self) -> tuple[int, int]:
        start, end = self.region.getRegion()
        return max(0, int(start * RATE)), min(self.audio.size, int(round(end * RATE)))

    def set_trim(self, start: int, end: int) -> None:
        self.region.setRegion((start / RATE, end / RATE))
        self._region_changed()

    def trimmed(self) -> np.ndarray:
        start, end = self.trim()
        return self.audio[start:end]

    def _region_changed(self, *_):
        self.trimChanged.emit(*self.trim())
