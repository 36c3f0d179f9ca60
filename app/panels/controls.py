"""Controls: sampling (temperature, top-p, random seed, voices), length, the runaway watchdog,
audio devices."""

from __future__ import annotations

import random

from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QPushButton,
    QSpinBox,
    QWidget,
)

from app.session import AudioDevices
from engine.audio import list_devices as engine_devices
from engine.generation_settings import GenerationSettings
from engine.watchdog import WatchdogSettings

LATENCIES = [("Low", "low"), ("Normal", "high"), ("50 ms", 0.05), ("100 ms", 0.1), ("250 ms", 0.25)]


def list_devices(kind: str) -> list[tuple[str, object]]:
    """(label, sounddevice id) of the input or output devices; [] when PortAudio has none."""
    try:
        devices = engine_devices()
    except Exception:  # noqa: BLE001 - no PortAudio / no server: offer only the default
        return []
    channels = (lambda d: d.max_output_channels) if kind == "output" else (lambda d: d.max_input_channels)
    return [(f"{d.name} ({d.hostapi})", d.name) for d in devices if channels(d) > 0]


class ControlsPanel(QGroupBox):
    """The take's settings: `generation_settings()`, `take_seconds()` and `audio_devices()`."""

    changed = pyqtSignal()
    liveChanged = pyqtSignal(float, float)  # temperature, top_p: applied while playing

    def __init__(self, settings=None, parent=None):
        super().__init__("Controls", parent)
        self.settings = settings
        self.temperature = QDoubleSpinBox(decimals=2, minimum=0.0, maximum=2.0, singleStep=0.05, value=1.0)
        self.temperature.setToolTip(
            "1 = the model's own distribution; lower plays quieter and clearer, with more silence; 0 is greedy"
        )
        # Three decimals: with the piano models, 0.99 already silences most of a take (docs/results.md,
        # "Takes against the sampler's settings").
        self.top_p = QDoubleSpinBox(decimals=3, minimum=0.01, maximum=1.0, singleStep=0.001, value=1.0)
        self.top_p.setToolTip(
            "Nucleus sampling: keep the most likely classes up to this mass (1 = off). Below 1 it drops the rare "
            "samples that start notes: the default piano model is silent a third of the time at 0.999, "
            "almost always at 0.99"
        )
        self.random_seed = QSpinBox(minimum=0, maximum=2**31 - 1, value=0)
        self.random_seed.setToolTip(
            "The sampler's random seed: the same model, settings and seed audio give the same take"
        )
        self.new_random_seed = QPushButton("New")
        self.new_random_seed.setToolTip("Pick a new random seed")
        self.new_random_seed.clicked.connect(self.randomize_random_seed)
        random_seed_row = QHBoxLayout()
        random_seed_row.setContentsMargins(0, 0, 0, 0)
        random_seed_row.addWidget(self.random_seed, 1)
        random_seed_row.addWidget(self.new_random_seed)
        self.voices = QSpinBox(minimum=1, maximum=8, value=1)
        self.voices.setToolTip("Independent streams generated at once; played mixed, saved one channel each")
        self.endless = QCheckBox("Endless")
        self.seconds = QDoubleSpinBox(decimals=1, minimum=0.5, maximum=3600.0, singleStep=1.0, value=10.0, suffix=" s")
        self.endless.toggled.connect(lambda on: self.seconds.setEnabled(not on))
        length_row = QHBoxLayout()
        length_row.setContentsMargins(0, 0, 0, 0)
        length_row.addWidget(self.endless)
        length_row.addWidget(self.seconds, 1)
        self.watchdog = QCheckBox("Roll back runaways")
        self.watchdog.setToolTip(
            "The watchdog: when a voice holds digital silence or turns to noise for a second, go back to "
            "where it last sounded well and resample it (live: the voice crossfades into the resumed audio)"
        )
        self.output_device = QComboBox()
        self.latency = QComboBox()
        for label, value in LATENCIES:
            self.latency.addItem(label, value)
        self.input_device = QComboBox()
        self.refresh_devices()

        form = QFormLayout(self)
        form.addRow("Temperature", self.temperature)
        form.addRow("Top-p", self.top_p)
        form.addRow("Random seed", _wrap(random_seed_row))
        form.addRow("Voices", self.voices)
        form.addRow("Length", _wrap(length_row))
        form.addRow("Watchdog", self.watchdog)
        form.addRow("Output", self.output_device)
        form.addRow("Latency", self.latency)
        form.addRow("Input", self.input_device)

        self.load()
        for widget in (self.temperature, self.top_p):
            widget.valueChanged.connect(lambda _: self.liveChanged.emit(self.temperature.value(), self.top_p.value()))
        for signal in (
            self.temperature.valueChanged,
            self.top_p.valueChanged,
            self.random_seed.valueChanged,
            self.voices.valueChanged,
            self.seconds.valueChanged,
            self.endless.toggled,
            self.watchdog.toggled,
            self.output_device.currentIndexChanged,
            self.latency.currentIndexChanged,
            self.input_device.currentIndexChanged,
        ):
            signal.connect(self._changed)

    def refresh_devices(self) -> None:
        for combo, kind in ((self.output_device, "output"), (self.input_device, "input")):
            current = combo.currentData()
            combo.blockSignals(True)
            combo.clear()
            combo.addItem("System default", "")
            for label, value in list_devices(kind):
                combo.addItem(label, value)
            combo.setCurrentIndex(max(0, combo.findData(current)))
            combo.blockSignals(False)

    def randomize_random_seed(self) -> None:
        self.random_seed.setValue(random.randrange(0, 2**31 - 1))

    def generation_settings(self) -> GenerationSettings:
        """The sampling of the next take (whether it starts with seed audio is the session's)."""
        return GenerationSettings(
            temperature=self.temperature.value(),
            top_p=self.top_p.value(),
            random_seed=self.random_seed.value(),
            voices=self.voices.value(),
            watchdog=WatchdogSettings() if self.watchdog.isChecked() else None,
        )

    def take_seconds(self) -> float | None:
        """The length to generate (seed audio not counted), None for an endless take."""
        return None if self.endless.isChecked() else self.seconds.value()

    def audio_devices(self) -> AudioDevices:
        return AudioDevices(
            output=self.output_device.currentData() or None,
            input=self.input_device.currentData() or None,
            latency=self.latency.currentData(),
        )

    def load(self) -> None:
        s = self.settings
        if s is None:
            return
        self.temperature.setValue(s.get("controls/temperature"))
        self.top_p.setValue(s.get("controls/top_p"))
        self.random_seed.setValue(s.get("controls/random_seed"))
        self.voices.setValue(s.get("controls/voices"))
        self.endless.setChecked(s.get("controls/endless"))
        self.seconds.setEnabled(not self.endless.isChecked())
        self.seconds.setValue(s.get("controls/seconds"))
        self.watchdog.setChecked(s.get("controls/watchdog"))
        for combo, key in ((self.output_device, "audio/output_device"), (self.input_device, "audio/input_device")):
            index = combo.findData(s.get(key))
            combo.setCurrentIndex(max(0, index))
        latency = s.get("audio/latency")
        index = next((i for i in range(self.latency.count()) if str(self.latency.itemData(i)) == str(latency)), 1)
        self.latency.setCurrentIndex(index)

    def save(self) -> None:
        s = self.settings
        if s is None:
            return
        s.set("controls/temperature", self.temperature.value())
        s.set("controls/top_p", self.top_p.value())
        s.set("controls/random_seed", self.random_seed.value())
        s.set("controls/voices", self.voices.value())
        s.set("controls/endless", self.endless.isChecked())
        s.set("controls/seconds", self.seconds.value())
        s.set("controls/watchdog", self.watchdog.isChecked())
        s.set("audio/output_device", self.output_device.currentData() or "")
        s.set("audio/input_device", self.input_device.currentData() or "")
        s.set("audio/latency", str(self.latency.currentData()))

    def _changed(self, *_):
        self.save()
        self.changed.emit()


def _wrap(layout) -> QWidget:
    widget = QWidget()
    widget.setLayout(layout)
    return widget
