"""A level meter: RMS bar and peak hold, in dBFS, fed by the window's display timer."""

from __future__ import annotations

import math

import numpy as np
from PyQt6.QtCore import QRectF
from PyQt6.QtGui import QColor, QPainter
from PyQt6.QtWidgets import QSizePolicy, QWidget

from app.views import theme

FLOOR_DB = -60.0


class LevelMeter(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.rms_db = FLOOR_DB
        self.peak_db = FLOOR_DB
        self._hold = FLOOR_DB
        self.setMinimumSize(18, 80)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Expanding)
        self.setToolTip("Output level (dBFS): RMS bar, peak line")

    def push(self, data: np.ndarray) -> None:
        """data: float32 [n], the audio heard since the last call (empty: decay)."""
        if data.size == 0:
            self.rms_db = max(FLOOR_DB, self.rms_db - 3)
            self._hold = max(FLOOR_DB, self._hold - 1)
        else:
            data = data[-800:]
            rms = float(np.sqrt(np.mean(data**2)))
            peak = float(np.abs(data).max())
            self.rms_db = max(FLOOR_DB, 20 * math.log10(rms + 1e-9))
            self.peak_db = max(FLOOR_DB, 20 * math.log10(peak + 1e-9))
            self._hold = max(self._hold - 1, self.peak_db)
        self.update()

    def paintEvent(self, event):
        painter = QPainter(self)
        rect = QRectF(self.rect()).adjusted(2, 2, -2, -2)
        painter.fillRect(rect, QColor(theme.PANEL))
        fraction = (self.rms_db - FLOOR_DB) / -FLOOR_DB
        height = rect.height() * max(0.0, min(1.0, fraction))
        colour = (
            QColor(theme.ACCENT)
            if self.rms_db < -6
            else QColor(theme.SEED)
            if self.rms_db < -1
            else QColor(theme.RECORD)
        )
        painter.fillRect(QRectF(rect.left(), rect.bottom() - height, rect.width(), height), colour)
        hold = rect.height() * max(0.0, min(1.0, (self._hold - FLOOR_DB) / -FLOOR_DB))
        painter.setPen(QColor(theme.TEXT))
        painter.drawLine(int(rect.left()), int(rect.bottom() - hold), int(rect.right()), int(rect.bottom() - hold))
        painter.end()
