"""The main window: transport, model and controls on the left; live views, the seed
audio and the effects chain (tabs), and the sample library on the right.

One display timer (`refresh`) drains the pipeline's program tap into the views and
updates every readout: transport, effects cost and latency, recording."""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PyQt6.QtCore import QByteArray, QCoreApplication, Qt, QTimer
from PyQt6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QPushButton,
    QScrollArea,
    QSplitter,
    QStatusBar,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

import engine.checkpoint
from app import workers
from app.library import Library, LibraryError
from app.library_browser import LibraryBrowser
from app.monitor import Monitor
from app.panels.controls import ControlsPanel
from app.panels.effects import EffectsPanel
from app.panels.model import ModelPanel
from app.panels.seed_audio import SeedAudioPanel
from app.panels.transport import TransportPanel
from app.session import GenerationSession, Playback
from app.settings import Settings
from app.states import ModelStatus, TransportState
from app.views import LevelMeter, ScrollingSpectrogram, ScrollingWaveform, theme
from engine.audio import Recorder
from engine.effects import Catalog, ChainSpec, EffectsChain, load_catalog
from engine.errors import UserError


class ErrorBanner(QWidget):
    """A dismissable message strip at the top of the window. It shows the last few
    messages, newest first, so that two problems at once (no sound card, and a plugin
    muted for sending NaN) are both in view; closing it clears them."""

    MAX_MESSAGES = 3

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("banner")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._messages: list[tuple[str, bool]] = []  # (rich text, is an error), newest first
        close = QPushButton("✕")
        close.setFlat(True)
        close.setFixedWidth(28)
        close.clicked.connect(self.dismiss)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        layout.addWidget(self.label, 1)
        layout.addWidget(close)
        self.hide()

    def show_message(self, text: str, error: bool = True) -> None:
        """Puts `text` (rich text) on top; the same text shown again moves up, not twice."""
        kept = [message for message in self._messages if message[0] != text]
        self._messages = [(text, error), *kept][: self.MAX_MESSAGES]
        self.label.setText("<br>".join(message for message, _ in self._messages))
        alarm = any(is_error for _, is_error in self._messages)
        colour = theme.RECORD if alarm else theme.ACCENT
        background = "#4a2327" if alarm else "#1d3a3a"
        self.setStyleSheet(
            f"QWidget#banner {{ background: {background}; border: 1px solid {colour}; border-radius: 5px; }}"
        )
        self.show()

    def dismiss(self) -> None:
        self._messages = []
        self.hide()

    def text(self) -> str:
        return self.label.text() if self.isVisible() else ""


class MainWindow(QMainWindow):
    def __init__(
        self,
        library: Library | None = None,
        settings: Settings | None = None,
        checkpoint: str | None = None,
        load_default: bool = True,
        plugin_catalog: Callable[[], Catalog] = load_catalog,
    ):
        """plugin_catalog: the plugins the effects panel offers (called in a worker)."""
        super().__init__()
        self.setWindowTitle("HarmonicRNN Studio")
        self.settings = settings or Settings()
        try:
            self.library = library or Library()
        except LibraryError as error:
            raise SystemExit(str(error)) from None
        self.checkpoint = None  # the loaded engine.checkpoint.ModelCheckpoint
        self.checkpoint_path = ""
        self.model_status = ModelStatus.NONE
        self.load_task: workers.Task | None = None
        self.session: GenerationSession | None = None
        self.playback = Playback(self)
        self.recorder: Recorder | None = None  # while recording
        self.last_take = None
        self.messages: list[str] = []  # every error shown (tests read it)

        # left column
        self.transport = TransportPanel()
        self.model_panel = ModelPanel()
        self.controls = ControlsPanel(self.settings)
        self.seed_audio_panel = SeedAudioPanel()
        self.effects_panel = EffectsPanel(plugin_catalog)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        for panel in (self.transport, self.model_panel, self.controls):
            left_layout.addWidget(panel)
        left_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(left)
        scroll.setWidgetResizable(True)
        scroll.setMinimumWidth(330)
        scroll.setMaximumWidth(420)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

        # live views
        self.waveform = ScrollingWaveform()
        self.spectrogram = ScrollingSpectrogram()
        self.meter = LevelMeter()
        self.monitor = Monitor(self.waveform, self.spectrogram, self.meter)
        self.waveform.setMinimumHeight(110)
        self.spectrogram.setMinimumHeight(110)
        views = QWidget()
        views_layout = QHBoxLayout(views)
        views_layout.setContentsMargins(0, 0, 0, 0)
        stack = QVBoxLayout()
        legend = QLabel(
            f"<span style='color:{theme.ACCENT}'>■</span> generated &nbsp; "
            f"<span style='color:{theme.SEED}'>■</span> seed audio"
        )
        legend.setObjectName("muted")
        stack.addWidget(legend)
        stack.addWidget(self.waveform, 1)
        stack.addWidget(self.spectrogram, 1)
        views_layout.addLayout(stack, 1)
        views_layout.addWidget(self.meter)

        self.browser = LibraryBrowser(self.library, self.settings, current_chain=self.effects_panel.current_spec)
        self.effects_scroll = QScrollArea()
        self.effects_scroll.setWidget(self.effects_panel)
        self.effects_scroll.setWidgetResizable(True)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.seed_audio_panel, "Seed audio")
        self.tabs.addTab(self.effects_scroll, "Effects")
        self.right_split = QSplitter(Qt.Orientation.Vertical)
        self.right_split.addWidget(views)
        self.right_split.addWidget(self.tabs)
        self.right_split.addWidget(self.browser)
        self.right_split.setSizes([280, 230, 310])
        self.banner = ErrorBanner()
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(self.banner)
        right_layout.addWidget(self.right_split, 1)

        central = QSplitter(Qt.Orientation.Horizontal)
        central.addWidget(scroll)
        central.addWidget(right)
        central.setStretchFactor(1, 1)
        self.setCentralWidget(central)
        self.status_bar = QStatusBar()  # kept: QMainWindow.statusBar() is typed as possibly None
        self.setStatusBar(self.status_bar)
        self.resize(1280, 820)

        # wiring
        self.transport.generateClicked.connect(self.generate)
        self.transport.stopClicked.connect(self.stop)
        self.model_panel.checkpointChosen.connect(self.load_checkpoint)
        self.controls.liveChanged.connect(self._live_controls)
        self.seed_audio_panel.recordToggled.connect(self.toggle_recording)
        self.seed_audio_panel.playRequested.connect(lambda audio: self.play_clip(audio, "the seed audio"))
        self.seed_audio_panel.error.connect(self.show_error)
        self.browser.playRequested.connect(self.play_take)
        self.browser.stopRequested.connect(self.playback.stop)
        self.browser.useAsSeedAudioRequested.connect(self.use_take_as_seed_audio)
        self.browser.loadChainRequested.connect(self._load_chain)
        self.effects_panel.chainReady.connect(self._chain_ready)
        self.effects_panel.error.connect(self.show_error)
        self.effects_panel.notice.connect(lambda text: self.status_bar.showMessage(text, 8000))
        self.browser.error.connect(self.show_error)
        self.browser.status.connect(self.status_bar.showMessage)
        self.playback.error.connect(self.show_error)
        # the one display timer: drains the program tap into the views, refreshes the readouts
        self.display_timer = QTimer(self)
        self.display_timer.timeout.connect(self.refresh)
        self.display_timer.start(33)

        if self.library.recovered or self.library.removed:
            self.show_notice(
                f"Recovered {len(self.library.recovered)} take(s) interrupted by a crash "
                "(marked “recovered” in the library)"
                + (f"; removed {len(self.library.removed)} that held no audio" if self.library.removed else "")
                + "."
            )
        self._restore_window()
        self._restore_chain()
        opened = self.settings.get("model/opened")
        current = checkpoint or self.settings.get("model/checkpoint") or str(engine.checkpoint.DEFAULT_CHECKPOINT)
        self.model_panel.set_checkpoints(
            engine.checkpoint.shipped_checkpoints(), opened + ([current] if checkpoint else []), current
        )
        if load_default:
            self.load_checkpoint(current)

    # ---- messages ------------------------------------------------------------------

    def show_error(self, text: str) -> None:
        self.messages.append(text)
        self.banner.show_message(html.escape(text).replace("\n", "<br>"))
        self.status_bar.showMessage(text.splitlines()[0] if text else "", 10000)

    def show_notice(self, text: str) -> None:
        self.banner.show_message(html.escape(text), error=False)

    # ---- model ---------------------------------------------------------------------

    def load_checkpoint(self, path: str):
        """Loads a checkpoint in a worker; returns the task (None when no path)."""
        if not path:
            self.model_panel.show_message("No checkpoint. Open a checkpoint folder to generate.", error=True)
            return None
        self.checkpoint_path = path
        self.model_status = ModelStatus.LOADING
        self.model_panel.show_message(f"Loading {Path(path).name}…")
        if self.transport.state in (TransportState.IDLE, TransportState.ERROR):
            self.transport.set_state(TransportState.LOADING)

        def work(task):
            return engine.checkpoint.load_model(path)

        def done(checkpoint):
            if path != self.checkpoint_path:
                return  # another was chosen meanwhile
            self.checkpoint = checkpoint
            self.model_status = ModelStatus.LOADED
            self.model_panel.show_card(checkpoint)
            self.settings.set("model/checkpoint", path)
            if not str(Path(path).resolve()).startswith(str(engine.checkpoint.CHECKPOINTS.resolve())):
                opened = [p for p in self.settings.get("model/opened") if p != path] + [path]
                self.settings.set("model/opened", opened[-10:])
            if self.transport.state is TransportState.LOADING:
                self.transport.set_state(TransportState.IDLE)
            self.status_bar.showMessage(f"Loaded {checkpoint.name}", 5000)

        def failed(text):
            if path != self.checkpoint_path:
                return
            self.checkpoint = None
            self.model_status = ModelStatus.FAILED
            self.model_panel.show_message(f"Could not load this checkpoint: {text}", error=True)
            self.show_error(f"Could not load the model: {text}")
            if self.transport.state is TransportState.LOADING:
                self.transport.set_state(TransportState.IDLE)

        self.load_task = workers.run_task(work, done=done, failed=failed, name="load checkpoint")
        return self.load_task

    # ---- generation ----------------------------------------------------------------

    def generate(self) -> None:
        if self.session is not None and self.session.active:
            return
        if self.checkpoint is None:
            if self.model_status is ModelStatus.LOADING:
                self.show_error("The model is still loading; press Generate again in a moment.")
            else:
                self.show_error(
                    "No model is loaded. Choose a checkpoint in the Model panel (or open a checkpoint folder)."
                )
            return
        self.banner.dismiss()
        self.playback.stop()
        # a fresh chain: the take starts without the last one's tails, and re-renders to the
        # same audio (reset() leaves the Dragonfly reverbs' modulation where it was)
        if self.effects_panel.spec.slots and not self.effects_panel.rebuild():
            return
        chain = self.effects_panel.chain
        self.session = GenerationSession(
            self.checkpoint,
            self.controls.generation_settings(),
            self.seed_audio_panel.seed_audio(),
            self.library,
            seconds=self.controls.take_seconds(),
            devices=self.controls.audio_devices(),
            effects=chain,
            parent=self,
        )
        self.monitor.show(self.session)
        self.session.stateChanged.connect(self.transport.set_state)
        self.session.error.connect(self.show_error)
        self.session.notice.connect(self.show_error)
        self.session.takeSaved.connect(self._take_saved)
        self.session.start()

    def stop(self) -> None:
        if self.session is not None:
            self.session.stop()

    def _live_controls(self, temperature: float, top_p: float) -> None:
        if self.session is not None and self.session.active:
            self.session.update(temperature=temperature, top_p=top_p)

    def _take_saved(self, take) -> None:
        self.last_take = take
        self.refresh()  # the views show the take to its end
        self.browser.refresh()
        if take is not None:
            self.browser.select_ids([take.id])
            self.status_bar.showMessage(f"Saved “{take.name}” ({take.duration:.1f} s) to the library", 8000)

    def refresh(self) -> None:
        """The display timer: every view and readout, from the threads' counters and taps."""
        self.monitor.refresh()
        session = self.session
        if session is not None:
            shown = session.player_state
            # the worker's own states
            settled = self.transport.state in (TransportState.STOPPING, TransportState.IDLE, TransportState.ERROR)
            if shown is not None and shown != self.transport.state and not settled:
                self.transport.set_state(shown)
            stats = session.stats()
            self.transport.set_stats(stats["seconds"], stats["fill"], stats["rtf"], stats["underruns"])
            self.transport.set_watchdog(stats["rollbacks"], stats["given_up"])
        if self.recorder is not None:
            self.seed_audio_panel.show_recording(self.recorder.recorded_so_far())
        self.effects_panel.show_stats(self.sounding_chain())

    def sounding_chain(self) -> EffectsChain | None:
        """The effects chain of the stream the views follow (None: dry or nothing playing)."""
        source = self.monitor.source
        if source is self.session and self.session is not None and self.session.active:
            return self.session.stage.effects
        if source is self.playback and self.playback.playing:
            return self.playback.player.stage.effects
        return None

    # ---- effects -------------------------------------------------------------------

    def _chain_ready(self, chain) -> None:
        """The effects panel built a new chain: the take being generated hears it from the
        next block (its tails start afresh)."""
        if self.session is not None and self.session.active:
            self.session.set_effects(chain)

    def _load_chain(self, spec: ChainSpec) -> None:
        self.effects_panel.set_chain(spec)
        self.tabs.setCurrentWidget(self.effects_scroll)

    def _restore_chain(self) -> None:
        saved = self.settings.get("effects/chain")
        if not saved:
            return
        try:
            self.effects_panel.set_chain(ChainSpec.from_json(saved))
        except ValueError as error:
            self.show_error(f"The last effects chain could not be restored: {error}")

    # ---- playback and recording ----------------------------------------------------

    def play_take(self, take) -> None:
        """Plays a take as it was heard: its dry audio through its stored effects chain
        (built here: VST3 plugins load on the main thread only)."""
        try:
            audio = take.read()
            chain = EffectsChain(ChainSpec.from_json(take.effects)) if take.effects else None
        except LibraryError as error:
            self.show_error(str(error))
            return
        except (UserError, ValueError) as error:
            self.show_error(f"Cannot play “{take.name}” through its effects: {error}")
            return
        self.play_clip(audio.T, take.name, seed_frames=take.seed_frames, effects=chain)

    def play_clip(
        self, audio: np.ndarray, name: str, seed_frames: int = 0, effects: EffectsChain | None = None
    ) -> None:
        if self.session is not None and self.session.active:
            self.show_error("Stop generating before playing a clip.")
            return
        if self.playback.play(
            np.asarray(audio, np.float32),
            devices=self.controls.audio_devices(),
            seed_frames=seed_frames,
            effects=effects,
        ):
            self.monitor.show(self.playback)
            self.status_bar.showMessage(f"Playing {name}", 3000)

    def use_take_as_seed_audio(self, take) -> None:
        try:
            audio = take.read().mean(axis=1)
        except LibraryError as error:
            self.show_error(str(error))
            return
        self.seed_audio_panel.set_audio(audio, f"take “{take.name}”")

    def toggle_recording(self, on: bool) -> None:
        if on:
            recorder = self.recorder = Recorder(device=self.controls.audio_devices().input)
            try:
                recorder.start()
            except Exception as error:  # noqa: BLE001 - no microphone, busy device, no server
                self.recorder = None
                self.seed_audio_panel.stop_recording_ui()
                self.show_error(f"Cannot record from the microphone: {error}")
                return
        elif self.recorder is not None:
            audio = self.recorder.stop()
            self.recorder = None
            if audio.size:
                self.seed_audio_panel.set_audio(audio, "microphone")
            else:
                self.seed_audio_panel.clear()
                self.show_error("The microphone recorded nothing.")

    # ---- lifetime ------------------------------------------------------------------

    def _restore_window(self) -> None:
        geometry = self.settings.get("window/geometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)

    def closeEvent(self, event):
        # Order matters: the take in progress is finished and listed while the library is
        # open, and nothing (a worker's queued result, a timer) reaches it once it is closed.
        self.hide()  # finishing a long take takes a moment; the user asked for the window to go
        self.stop()
        self.playback.stop()
        if self.recorder is not None:
            self.toggle_recording(False)
        self.display_timer.stop()
        workers.wait_all(120000)  # a take still compiling finishes that first; Stop ends it at once after
        QCoreApplication.sendPostedEvents()  # the workers' last signals (takeSaved refreshes the browser)
        self.controls.save()
        chain = self.effects_panel.current_spec()  # with the plugins' own states
        self.settings.set("effects/chain", chain.to_json() if chain.slots else "")
        self.settings.set("window/geometry", self.saveGeometry())
        self.settings.sync()
        self.library.close()
        super().closeEvent(event)
