"""A level meter: RMS bar and peak hold, in dBFS, painted from a QTimer."""

from __future__ import annotations

import math

import numpy as np
from PyQt6.QtCore import QRectF, QTimer
from PyQt6.QtGui import QColor, QPainter
from PyQt6.QtWidgets import QSizePolicy, QWidget

from app.view_buffer import ViewBuffer
from app.views import theme

FLOOR_DB = -60.0


class LevelMeter(QWidget):
    def __init__(self, buffer: ViewBuffer | None = None, fps: int = 30, parent=None):
        super().__init__(parent)
        self.buffer = buffer
        self.rms_db = FLOOR_DB
        self.peak_db = FLOOR_DB
        self._hold = FLOOR_DB
        self._last_total = 0
        self.setMinimumSize(18, 80)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Expanding)
        self.setToolTip("Output level (dBFS): RMS bar, peak line")
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.update_level)
        self.timer.start(int(1000 / fps))

    def set_buffer(self, buffer: ViewBuffer) -> None:
        self.buffer = buffer

    def update_level(self) -> None:
        if self.buffer is None:
            return
        if self.buffer.total == self._last_total:
            self.rms_db = max(FLOOR_DB, self.rms_db - 3)  # decay when silent
            self._hold = max(FLOOR_DB, self._hold - 1)
        else:
            self._last_total = self.buffer.total
            data, _ = self.buffer.latest(800)
            rms = float(np.sqrt(np.mean(data**2))) if data.size else 0.0
            peak = float(np.abs(data).max()) if data.size else 0.0
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
        colour = QColor(theme.ACCENT) if self.rms_db < -6 else QColor(theme.SEED) if self.rms_db < -1 else QColor(theme.RECORD)
        painter.fillRect(QRectF(rect.left(), rect.bottom() - height, rect.width(), height), colour)
        hold = rect.height() * max(0.0, min(1.0, (self._hold - FLOOR_DB) / -FLOOR_DB))
        painter.setPen(QColor(theme.TEXT))
        painter.drawLine(int(rect.left()), int(rect.bottom() - hold), int(rect.right()), int(rect.bottom() - hold))
        painter.end()
