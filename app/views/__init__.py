"""Live views, each redrawn from a QTimer in the GUI thread from a `ViewBuffer`."""

from app.views.meter import LevelMeter
from app.views.spectrogram import ScrollingSpectrogram
from app.views.waveform import ScrollingWaveform, TakeWaveform

__all__ = ["LevelMeter", "ScrollingSpectrogram", "ScrollingWaveform", "TakeWaveform"]
