"""A scrolling spectrogram: the audio heard since the last display tick becomes new columns."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg

from app.views import theme


class ScrollingSpectrogram(pg.PlotWidget):
    def __init__(self, fft: int = 512, hop: int = 256, columns: int = 250, parent=None):
        super().__init__(parent=parent, background=theme.BACKGROUND)
        self.fft, self.hop, self.columns = fft, hop, columns
        self.window = np.hanning(fft).astype(np.float32)
        self.image = np.full((columns, fft // 2 + 1), -100.0, np.float32)
        self.columns_added = 0  # tests read it
        self._pending = np.zeros(0, np.float32)
        self.setMouseEnabled(False, False)
        self.hideButtons()
        self.setMenuEnabled(False)
        plot = self.getPlotItem()
        plot.hideAxis("bottom")
        plot.getAxis("left").setPen(theme.MUTED)
        plot.getAxis("left").setLabel("kHz")
        self.item = pg.ImageItem(axisOrder="col-major")
        self.item.setLookupTable(pg.colormap.get("inferno").getLookupTable(0.0, 1.0, 256))
        self.item.setLevels((-90, -10))
        self.addItem(self.item)
        self.item.setImage(self.image, autoLevels=False)
        # frequency axis in kHz: rows are bins 0..fft/2 -> 0..8 kHz (after setImage: the
        # rect maps the image's current size)
        self.item.setRect(0, 0, columns, 8.0)
        self.setXRange(0, columns, padding=0)
        self.setYRange(0, 8, padding=0)

    def restart(self) -> None:
        """A new stream: drops the half frame left over from the last one."""
        self._pending = np.zeros(0, np.float32)

    def push(self, new: np.ndarray) -> None:
        """new: float32 [n] at 16 kHz, the audio heard since the last call."""
        if new.size == 0:
            return
        audio = np.concatenate([self._pending, new])
        count = max(0, 1 + (audio.size - self.fft) // self.hop) if audio.size >= self.fft else 0
        if count == 0:
            self._pending = audio
            return
        count = min(count, self.columns)
        start = audio.size - self.fft - (count - 1) * self.hop
        frames = np.lib.stride_tricks.sliding_window_view(audio[start:], self.fft)[:: self.hop][:count]
        spectrum = np.abs(np.fft.rfft(frames * self.window, axis=1)) / (self.fft / 4)
        db = 20 * np.log10(spectrum + 1e-6)
        self.image = np.roll(self.image, -count, axis=0)
        self.image[-count:] = db
        self._pending = audio[start + count * self.hop :]
        self.columns_added += count
        self.item.setImage(self.image, autoLevels=False)
