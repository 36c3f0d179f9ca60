"""Transport: Generate / Stop, the live state, buffer fill, real-time factor, the watchdog's rollbacks."""

from __future__ import annotations

from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import QGridLayout, QGroupBox, QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout

from app.states import TransportState

STATES = {  # the text and colour of each state
    TransportState.IDLE: ("Ready", "#7b8494"),
    TransportState.LOADING: ("Loading model…", "#e0a458"),
    TransportState.COMPILING: ("Compiling…", "#e0a458"),
    TransportState.BUFFERING: ("Buffering…", "#e0a458"),
    TransportState.PLAYING: ("Playing", "#5fb3b3"),
    TransportState.RENDERING: ("Rendering (no audio device)…", "#5fb3b3"),
    TransportState.STOPPING: ("Stopping…", "#7b8494"),
    TransportState.ERROR: ("Error", "#e06c75"),
}


class TransportPanel(QGroupBox):
    generateClicked = pyqtSignal()
    stopClicked = pyqtSignal()

    def __init__(self, parent=None):
        super().__init__("Transport", parent)
        self.generate_button = QPushButton("▶  Generate")
        self.generate_button.setObjectName("generate")
        self.generate_button.setMinimumHeight(44)
        self.generate_button.clicked.connect(self.generateClicked)
        self.stop_button = QPushButton("■  Stop")
        self.stop_button.setMinimumHeight(44)
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.stopClicked)
        buttons = QHBoxLayout()
        buttons.addWidget(self.generate_button, 2)
        buttons.addWidget(self.stop_button, 1)

        self.state_label = QLabel()
        self.state_label.setObjectName("state")
        self.time_label = QLabel("0:00.0")
        self.underrun_label = QLabel("underruns 0")
        self.rtf_label = QLabel("speed –")
        self.rtf_label.setToolTip("Real-time factor: seconds of audio generated per second of compute")
        self.watchdog_label = QLabel("")
        self.watchdog_label.setToolTip(
            "Runaways into silence or noise the watchdog rolled back in this take (Controls → Watchdog)"
        )
        self.buffer_bar = QProgressBar()
        self.buffer_bar.setRange(0, 100)
        self.buffer_bar.setFormat("buffer %p%")
        self.buffer_bar.setToolTip("How full the playback buffer is")
        grid = QGridLayout()
        grid.addWidget(self.state_label, 0, 0, 1, 2)
        grid.addWidget(self.time_label, 0, 2)
        grid.addWidget(self.buffer_bar, 1, 0, 1, 3)
        grid.addWidget(self.rtf_label, 2, 0)
        grid.addWidget(self.underrun_label, 2, 1, 1, 2)
        grid.addWidget(self.watchdog_label, 3, 0, 1, 3)

        layout = QVBoxLayout(self)
        layout.addLayout(buttons)
        layout.addLayout(grid)
        self.state = TransportState.IDLE
        self.set_state(TransportState.IDLE)

    def set_state(self, state: TransportState, detail: str = "") -> None:
        self.state = state
        text, colour = STATES[state]
        if detail:
            text = f"{text} {detail}"
        self.state_label.setText(f"<span style='color:{colour}; font-weight:600'>● {text}</span>")
        busy = state not in (TransportState.IDLE, TransportState.ERROR)
        self.generate_button.setEnabled(not busy)
        self.stop_button.setEnabled(busy and state is not TransportState.STOPPING)

    def set_stats(self, seconds: float, fill: float | None, rtf: float | None, underruns: int) -> None:
        minutes, rest = divmod(max(0.0, seconds), 60)
        self.time_label.setText(f"{int(minutes)}:{rest:04.1f}")
        self.buffer_bar.setValue(int(round(100 * (fill or 0.0))))
        self.rtf_label.setText("speed –" if rtf is None else f"speed {rtf:.2f}× real time")
        colour = "#e06c75" if underruns else "#7b8494"
        self.underrun_label.setText(f"<span style='color:{colour}'>underruns {underruns}</span>")

    def set_watchdog(self, rollbacks: int | None, given_up: int | None) -> None:
        """The take's rollbacks and the runaways the watchdog gave up on; None: it is off."""
        if rollbacks is None:
            self.watchdog_label.setText("")
            return
        text = f"watchdog: {rollbacks} rollback{'s' if rollbacks != 1 else ''}"
        if given_up:
            text += f", gave up {given_up}×"
        self.watchdog_label.setText(f"<span style='color:#7b8494'>{text}</span>")
