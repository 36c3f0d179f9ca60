"""Live views, passive widgets fed by the window's one display timer (`app.monitor`)."""

from app.views.meter import LevelMeter
from app.views.spectrogram import ScrollingSpectrogram
from app.views.waveform import ScrollingWaveform, TakeWaveform

__all__ = ["LevelMeter", "ScrollingSpectrogram", "ScrollingWaveform", "TakeWaveform"]
