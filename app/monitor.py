"""What the live views show: the program tap of the stream that is sounding.

A *source* is anything with `program` (an `engine.audio.RingBuffer` of processed audio
at 16 kHz), `heard_samples` (how far the sound card has played it) and `seed_frames`
(that many leading samples are seed audio): `app.session.GenerationSession` and
`app.session.Playback`. The window's display timer calls `refresh()`; it reads only up
to what has been heard, so the views stay in step with the speakers even though the
pipeline runs up to a buffer ahead.
"""

from __future__ import annotations

import numpy as np

from app.views import LevelMeter, ScrollingSpectrogram, ScrollingWaveform


class Monitor:
    def __init__(self, waveform: ScrollingWaveform, spectrogram: ScrollingSpectrogram, meter: LevelMeter):
        self.waveform = waveform
        self.spectrogram = spectrogram
        self.meter = meter
        self.source = None
        self.position = 0  # program samples drawn so far (tests read it)

    def show(self, source) -> None:
        """Follows a new stream from its start."""
        self.source = source
        self.position = 0
        self.spectrogram.restart()

    def refresh(self) -> None:
        """Display timer: draws what was heard since the last call."""
        source = self.source
        program = None if source is None else source.program
        if program is None:
            self.meter.push(np.zeros(0, np.float32))
            return
        heard = source.heard_samples
        new, self.position = program.read_since(self.position, heard)
        self.meter.push(new)
        if new.size == 0:
            return
        self.spectrogram.push(new)
        n = self.waveform.samples
        positions = np.arange(self.position - n, self.position)
        self.waveform.draw(program.latest(n, self.position), (positions >= 0) & (positions < source.seed_frames))
