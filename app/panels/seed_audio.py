"""Seed audio, the clip a take continues: record it from the microphone (live waveform) or
open a file, trim it on its waveform, play it back, and start the next take from it. (Not
the random seed, which is one of the controls.)"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import QCheckBox, QFileDialog, QGroupBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout

from app import workers
from app.views.waveform import TakeWaveform
from engine.audio_file import read_audio
from engine.mulaw import SAMPLE_RATE as RATE

AUDIO_FILTER = "Audio files (*.wav *.flac *.ogg *.mp3 *.aiff *.aif);;All files (*)"


@dataclasses.dataclass(frozen=True)
class SeedAudio:
    """The clip a take starts from.

    Attributes:
      audio: float32 [n] at 16 kHz, trimmed.
      source: where it came from, shown to the user and kept with the take
        ("microphone", a file's name, a take's name).
    """

    audio: np.ndarray
    source: str


class SeedAudioPanel(QGroupBox):
    recordToggled = pyqtSignal(bool)
    playRequested = pyqtSignal(object)  # float32 [n] at 16 kHz
    error = pyqtSignal(str)
    changed = pyqtSignal()

    def __init__(self, parent=None):
        super().__init__("Seed audio", parent)
        self.source = ""
        self.record_button = QPushButton("● Record")
        self.record_button.setCheckable(True)
        self.record_button.setObjectName("record")
        self.record_button.toggled.connect(self._record_toggled)
        self.open_button = QPushButton("Open file…")
        self.open_button.clicked.connect(self.open_dialog)
        self.play_button = QPushButton("▶ Play")
        self.play_button.clicked.connect(lambda: self.playRequested.emit(self.waveform.trimmed()))
        self.clear_button = QPushButton("Clear")
        self.clear_button.clicked.connect(self.clear)
        row = QHBoxLayout()
        for button in (self.record_button, self.open_button, self.play_button, self.clear_button):
            row.addWidget(button)
        self.waveform = TakeWaveform()
        self.waveform.setMinimumHeight(70)
        self.waveform.trimChanged.connect(lambda *_: self._update_label())
        self.use = QCheckBox("Start from this audio")
        self.use.setToolTip("The next take continues this clip; off: it starts from silence")
        self.use.toggled.connect(lambda _: self.changed.emit())
        self.label = QLabel("No seed audio: generation starts from silence")
        self.label.setObjectName("muted")
        bottom = QHBoxLayout()
        bottom.addWidget(self.use)
        bottom.addWidget(self.label, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.waveform)
        layout.addLayout(bottom)
        self._update_buttons()

    # ---- state ---------------------------------------------------------------------

    def set_audio(self, audio: np.ndarray, source: str) -> None:
        self.source = source
        self.waveform.set_audio(audio)
        self.use.setChecked(True)
        self._update_buttons()
        self._update_label()
        self.changed.emit()

    def show_recording(self, audio: np.ndarray) -> None:
        self.waveform.append_live(audio)
        self.label.setText(f"Recording… {audio.size / RATE:.1f} s")

    def clear(self) -> None:
        self.source = ""
        self.waveform.set_audio(np.zeros(0, np.float32))
        self.use.setChecked(False)
        self._update_buttons()
        self._update_label()
        self.changed.emit()

    def seed_audio(self) -> SeedAudio | None:
        """The trimmed clip and where it came from, or None when not used."""
        if not self.use.isChecked():
            return None
        audio = self.waveform.trimmed()
        return SeedAudio(audio, self.source) if audio.size else None

    def _update_buttons(self) -> None:
        has = self.waveform.audio.size > 0
        self.play_button.setEnabled(has)
        self.clear_button.setEnabled(has)
        self.use.setEnabled(has)

    def _update_label(self) -> None:
        if self.waveform.audio.size == 0:
            self.label.setText("No seed audio: generation starts from silence")
            return
        start, end = self.waveform.trim()
        self.label.setText(
            f"{self.source}: {(end - start) / RATE:.2f} s of {self.waveform.audio.size / RATE:.2f} s "
            "(drag the edges to trim)"
        )

    # ---- actions -------------------------------------------------------------------

    def _record_toggled(self, on: bool) -> None:
        self.record_button.setText("■ Stop recording" if on else "● Record")
        self.recordToggled.emit(on)

    def stop_recording_ui(self) -> None:
        self.record_button.blockSignals(True)
        self.record_button.setChecked(False)
        self.record_button.setText("● Record")
        self.record_button.blockSignals(False)

    def open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a seed audio file", "", AUDIO_FILTER)
        if path:
            self.open_file(path)

    def open_file(self, path: str | Path) -> workers.Task:
        """Reads and resamples the file in a worker; returns the task."""
        path = Path(path)
        self.label.setText(f"Reading {path.name}…")
        return workers.run_task(
            lambda task: read_audio(path),
            done=lambda audio: self.set_audio(audio, path.name),
            failed=self._read_failed,
            name="read seed audio",
        )

    def _read_failed(self, text: str) -> None:
        self._update_label()
        self.error.emit(text)
