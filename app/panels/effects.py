"""The effects chain panel: plugins between the generator and the sound card.

The panel owns the chain as the user edits it (`spec`, an `engine.effects.ChainSpec`)
and the running `engine.effects.EffectsChain` built from it (`chain`). Parameter, bypass
and dry/wet changes go to the running chain's thread-safe setters (heard from the next
block); adding, removing, reordering plugins or switching the 48 kHz mode builds a new
chain and announces it with `chainReady`, for the window to swap into the live stream.
Chains are built here, on the GUI thread: pedalboard loads (and resets) a VST3 plugin
only on the main thread once any has been loaded (a second load elsewhere raises
"must be reloaded on the main thread"); a build takes ~0.25 s with three reverbs.
Every slot's controls are made from the plugin's parameter list: a slider and a spin box
with the unit for a number, a check box for a switch, a combo box for a choice.

A slot whose plugin has its own editor (`PluginInfo.has_editor`) gets an "Editor" button
(`plugin_editor.py`): an LV2 plugin's X11 UI opens in a window of ours, on the GUI
thread; a VST3 plugin's editor in a child process (pedalboard's `show_editor` is a modal
loop). What the user turns there goes where a slider's change goes (the running chain's
setter, the slot's spec) and moves the slider; a slider's change is shown in the editor.

`show_stats` (called by the window's display timer) shows the running chain's cost per
block, its share of the real-time budget, the latency and slots muted by the NaN guard.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app import workers
from app.panels.plugin_editor import PluginEditorWindow, Vst3EditorProcess
from app.views import theme
from engine.effects import (
    Catalog,
    ChainSpec,
    EffectsChain,
    ParameterInfo,
    ParameterKind,
    PluginFormat,
    PluginInfo,
    PluginSlot,
    ScanFailure,
    describe,
)
from engine.effects.spec import ParameterValue
from engine.errors import UserError
from engine.mulaw import SAMPLE_RATE as RATE

SLIDER_STEPS = 1000  # a float parameter's slider resolution
PARAMETER_COLUMNS = 2
HIGH_RATE = 48000


class ParameterControl(QWidget):
    """The control for one parameter, made from its `ParameterInfo`; `changed(name, value)`
    when the user moves it (not when `set_value` is called)."""

    changed = pyqtSignal(str, object)

    def __init__(self, info: ParameterInfo, value, parent=None):
        super().__init__(parent)
        self.info = info
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        if info.kind is ParameterKind.BOOL:
            self.check = QCheckBox()
            self.check.toggled.connect(lambda on: self.changed.emit(info.name, bool(on)))
            layout.addWidget(self.check)
            layout.addStretch(1)
        elif info.kind is ParameterKind.CHOICE:
            self.combo = QComboBox()
            self.combo.addItems(list(info.choices))
            self.combo.currentTextChanged.connect(lambda text: self.changed.emit(info.name, text))
            layout.addWidget(self.combo, 1)
        else:
            self.slider = QSlider(Qt.Orientation.Horizontal)
            self.slider.setRange(0, SLIDER_STEPS)
            span = info.maximum - info.minimum
            decimals = 0 if span >= 1000 else 1 if span >= 100 else 2 if span >= 2 else 3
            self.spin = QDoubleSpinBox()
            self.spin.setDecimals(decimals)
            self.spin.setRange(info.minimum, info.maximum)
            self.spin.setSingleStep(span / 100 if span > 0 else 0.01)
            if info.unit:
                self.spin.setSuffix(f" {info.unit}")
            self.spin.setFixedWidth(104)  # the sliders line up
            self.slider.valueChanged.connect(self._slider_moved)
            self.spin.valueChanged.connect(self._spin_changed)
            layout.addWidget(self.slider, 1)
            layout.addWidget(self.spin)
        self.set_value(value)

    def set_value(self, value) -> None:
        kind = self.info.kind
        for widget in self.findChildren(QWidget):
            widget.blockSignals(True)
        if kind is ParameterKind.BOOL:
            self.check.setChecked(bool(value))
        elif kind is ParameterKind.CHOICE:
            self.combo.setCurrentText(str(value))
        else:
            self.spin.setValue(float(value))
            self.slider.setValue(self._to_slider(float(value)))
        for widget in self.findChildren(QWidget):
            widget.blockSignals(False)

    def value(self):
        kind = self.info.kind
        if kind is ParameterKind.BOOL:
            return self.check.isChecked()
        if kind is ParameterKind.CHOICE:
            return self.combo.currentText()
        return self.spin.value()

    def _to_slider(self, value: float) -> int:
        span = self.info.maximum - self.info.minimum
        return int(round((value - self.info.minimum) / span * SLIDER_STEPS)) if span > 0 else 0

    def _slider_moved(self, position: int) -> None:
        value = self.info.minimum + (self.info.maximum - self.info.minimum) * position / SLIDER_STEPS
        self.spin.blockSignals(True)
        self.spin.setValue(value)
        self.spin.blockSignals(False)
        self.changed.emit(self.info.name, float(self.spin.value()))

    def _spin_changed(self, value: float) -> None:
        self.slider.blockSignals(True)
        self.slider.setValue(self._to_slider(value))
        self.slider.blockSignals(False)
        self.changed.emit(self.info.name, float(value))


class SlotWidget(QFrame):
    """One plugin of the chain: its name, latency and guard state, bypass, dry/wet,
    move up/down, remove, and its parameters."""

    parameterChanged = pyqtSignal(str, object)
    bypassChanged = pyqtSignal(bool)
    mixChanged = pyqtSignal(float)
    moveRequested = pyqtSignal(int)  # -1 up, +1 down
    removeRequested = pyqtSignal()
    editorRequested = pyqtSignal()

    def __init__(self, index: int, info: PluginInfo, slot: PluginSlot, parent=None):
        super().__init__(parent)
        self.setObjectName("slot")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setStyleSheet(f"QFrame#slot {{ border: 1px solid {theme.GRID}; border-radius: 4px; }}")
        title = QLabel(
            f"<b>{index + 1}. {info.ref.name}</b> <span style='color:{theme.MUTED}'>{info.ref.format}</span>"
        )
        title.setToolTip(f"{info.ref.name} ({info.vendor})\n{info.ref.id}")
        self.latency_label = QLabel()
        self.latency_label.setObjectName("muted")
        self.guard_label = QLabel()
        self.guard_label.setStyleSheet(f"color: {theme.RECORD}; font-weight: 600")
        self.bypass = QCheckBox("Bypass")
        self.bypass.setChecked(slot.bypass)
        self.bypass.toggled.connect(self.bypassChanged)
        buttons = []
        for text, tip, action in (
            ("▲", "Move up", lambda: self.moveRequested.emit(-1)),
            ("▼", "Move down", lambda: self.moveRequested.emit(1)),
            ("✕", "Remove", self.removeRequested.emit),
        ):
            button = QToolButton()
            button.setText(text)
            button.setToolTip(tip)
            button.clicked.connect(action)
            buttons.append(button)
        self.up_button, self.down_button, self.remove_button = buttons
        self.editor_button = QPushButton("Editor")
        self.editor_button.setToolTip("Open the plugin's own editor")
        self.editor_button.setVisible(info.has_editor)
        self.editor_button.clicked.connect(self.editorRequested)
        header = QHBoxLayout()
        header.addWidget(title, 1)
        header.addWidget(self.guard_label)
        header.addWidget(self.latency_label)
        header.addWidget(self.editor_button)
        header.addWidget(self.bypass)
        for button in buttons:
            header.addWidget(button)

        self.mix = ParameterControl(
            ParameterInfo("mix", "Dry/wet", "%", ParameterKind.FLOAT, 0.0, 100.0, 100.0), slot.mix * 100
        )
        self.mix.changed.connect(lambda _, value: self.mixChanged.emit(value / 100))
        self.controls: dict[str, ParameterControl] = {}
        for parameter in info.parameters:
            control = ParameterControl(parameter, slot.parameters.get(parameter.name, parameter.default))
            control.changed.connect(self.parameterChanged)
            self.controls[parameter.name] = control
        grid = QGridLayout()  # two parameters a row: a plugin with twenty stays readable
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(10)
        rows = [("Dry/wet", self.mix)] + [(p.label, self.controls[p.name]) for p in info.parameters]
        for index, (label, control) in enumerate(rows):
            row, column = divmod(index, PARAMETER_COLUMNS)
            grid.addWidget(QLabel(label), row, 2 * column)
            grid.addWidget(control, row, 2 * column + 1)
        for column in range(PARAMETER_COLUMNS):
            grid.setColumnStretch(2 * column + 1, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        layout.addLayout(header)
        layout.addLayout(grid)

    def show_state(self, latency_samples: int | None, muted: bool) -> None:
        self.latency_label.setText("" if not latency_samples else f"{1000 * latency_samples / RATE:.1f} ms")
        self.guard_label.setText("MUTED: NaN/Inf" if muted else "")


class EffectsPanel(QGroupBox):
    """The chain editor. Signals: `chainReady(EffectsChain or None)` when a newly built
    chain (None: empty) should replace the live one; `error(str)`, `notice(str)`."""

    chainReady = pyqtSignal(object)
    error = pyqtSignal(str)
    notice = pyqtSignal(str)

    def __init__(self, catalog_loader: Callable[[], Catalog] | None = None, parent=None):
        """catalog_loader: lists the plugins to offer (e.g. `engine.effects.load_catalog`);
        called in a worker."""
        super().__init__("Effects", parent)
        self.spec = ChainSpec()
        self.infos: list[PluginInfo] = []  # per slot
        self.chain: EffectsChain | None = None  # built from spec; None when empty
        self.catalog: list[PluginInfo] = []
        self.failures: list[ScanFailure] = []
        self.slot_widgets: list[SlotWidget] = []
        # open editor windows by the identity of their slot (a slot keeps its PluginSlot when moved)
        self.editors: dict[int, PluginEditorWindow | Vst3EditorProcess] = {}

        self.plugin_box = QComboBox()
        self.plugin_box.setMinimumWidth(150)
        self.add_button = QPushButton("Add")
        self.add_button.clicked.connect(self._add_chosen)
        self.failures_label = QLabel()
        self.failures_label.setObjectName("muted")
        add_row = QHBoxLayout()
        add_row.addWidget(self.plugin_box, 1)
        add_row.addWidget(self.add_button)
        self.high_rate = QCheckBox("Run at 48 kHz")
        self.high_rate.setToolTip("Resample to 48 kHz around the chain (some plugins misbehave at 16 kHz)")
        self.high_rate.toggled.connect(self._rate_toggled)
        self.save_button = QPushButton("Save preset…")
        self.save_button.clicked.connect(lambda: self.save_preset())
        self.load_button = QPushButton("Load preset…")
        self.load_button.clicked.connect(lambda: self.load_preset())
        preset_row = QHBoxLayout()
        preset_row.addWidget(self.high_rate)
        preset_row.addStretch(1)
        preset_row.addWidget(self.load_button)
        preset_row.addWidget(self.save_button)
        self.cost_label = QLabel()
        self.cost_label.setToolTip("Time the chain takes per block, and its share of the block's duration")
        self.latency_label = QLabel()
        stats_row = QHBoxLayout()
        stats_row.addWidget(self.cost_label, 1)
        stats_row.addWidget(self.latency_label)
        self.slots_box = QVBoxLayout()
        self.slots_box.setContentsMargins(0, 0, 0, 0)
        self.empty_label = QLabel("No effects: the generator plays dry. Add one above.")
        self.empty_label.setObjectName("muted")
        layout = QVBoxLayout(self)
        layout.addLayout(add_row)
        layout.addWidget(self.failures_label)
        layout.addLayout(preset_row)
        layout.addLayout(stats_row)
        layout.addWidget(self.empty_label)
        layout.addLayout(self.slots_box)
        self.show_stats(None)
        if catalog_loader is not None:
            self.load_catalog(catalog_loader)

    # ---- the catalog ---------------------------------------------------------------

    def load_catalog(self, loader: Callable[[], Catalog]) -> workers.Task:
        """Lists the plugins `loader()` returns (an `engine.effects.Catalog`), in a worker."""
        self.plugin_box.clear()
        self.plugin_box.addItem("Scanning plugins…")
        self.plugin_box.setEnabled(False)
        self.add_button.setEnabled(False)

        def done(catalog: Catalog) -> None:
            self.set_catalog(catalog.plugins, catalog.failures)

        def failed(text: str) -> None:
            self.plugin_box.clear()
            self.error.emit(f"Could not list the effects plugins: {text}")

        return workers.run_task(lambda task: loader(), done=done, failed=failed, name="scan plugins")

    def set_catalog(self, plugins: Sequence[PluginInfo], failures: Sequence[ScanFailure] = ()) -> None:
        self.catalog = list(plugins)
        self.failures = list(failures)
        self.plugin_box.clear()
        for info in self.catalog:
            self.plugin_box.addItem(f"{info.ref.name}  ({info.ref.format})", info)
        self.plugin_box.setEnabled(bool(self.catalog))
        self.add_button.setEnabled(bool(self.catalog))
        if self.failures:
            self.failures_label.setText(f"{len(self.failures)} plugin(s) could not be loaded (hover for why)")
            reasons = [f"{f.path_or_uri} ({f.format}): {f.reason}" for f in self.failures]
            self.failures_label.setToolTip("\n".join(reasons))
        else:
            self.failures_label.setText("")

    def plugin(self, name: str) -> PluginInfo:
        """The catalog's plugin by display name or id."""
        return next(info for info in self.catalog if name in (info.ref.name, info.ref.id))

    # ---- editing -------------------------------------------------------------------

    def add_plugin(self, info: PluginInfo) -> None:
        self.spec.slots.append(PluginSlot(info.ref, {}))
        self.infos.append(info)
        self._structure_changed()

    def remove(self, index: int) -> None:
        del self.spec.slots[index]
        del self.infos[index]
        self._structure_changed()

    def move_slot(self, index: int, delta: int) -> None:
        """Moves slot `index` by `delta` places (named apart from QWidget.move, which it used to hide)."""
        target = index + delta
        if not 0 <= target < len(self.spec.slots):
            return
        slots, infos = self.spec.slots, self.infos
        slots[index], slots[target] = slots[target], slots[index]
        infos[index], infos[target] = infos[target], infos[index]
        self._structure_changed()

    def set_parameter(self, index: int, name: str, value: ParameterValue) -> None:
        """A change from the slot's own controls: to the chain, the spec and the slot's editor."""
        self._apply_parameter(index, name, value)
        editor = self.editors.get(id(self.spec.slots[index]))
        if editor is not None:
            editor.set_value(name, value)

    def _apply_parameter(self, index: int, name: str, value: ParameterValue) -> None:
        self._live(lambda chain: chain.set_parameter(index, name, value))
        self.spec.slots[index].parameters[name] = value

    def open_editor(self, index: int) -> PluginEditorWindow | Vst3EditorProcess:
        """Opens slot `index`'s plugin editor (or raises the open one)."""
        slot, info = self.spec.slots[index], self.infos[index]
        editor = self.editors.get(id(slot))
        if editor is not None:
            editor.bring_to_front()
            return editor
        values = {p.name: slot.parameters.get(p.name, p.default) for p in info.parameters}
        if info.ref.format is PluginFormat.VST3:  # the slot as it sounds: its plugin's state too
            editor = Vst3EditorProcess(info, self.current_spec().slots[index].state, values, self)
            editor.failed.connect(self.error)
        else:
            editor = PluginEditorWindow(info, self)
        self.editors[id(slot)] = editor
        editor.changed.connect(lambda name, value: self._edited_in_editor(slot, name, value))
        editor.closed.connect(lambda: self.editors.pop(id(slot), None))
        if isinstance(editor, PluginEditorWindow):
            editor.show()
            editor.open_ui(values, self.spec.rate)
        return editor

    def _edited_in_editor(self, slot: PluginSlot, name: str, value: ParameterValue) -> None:
        """A change from a plugin's editor: to the chain, the spec and the slider."""
        index = next((i for i, s in enumerate(self.spec.slots) if s is slot), None)
        if index is None:
            return
        self._apply_parameter(index, name, value)
        self.slot_widgets[index].controls[name].set_value(value)

    def _close_lost_editors(self) -> None:
        """Closes the editors of slots that are no longer in the chain."""
        kept = {id(slot) for slot in self.spec.slots}
        for key, editor in list(self.editors.items()):
            if key not in kept:
                editor.close()

    def set_bypass(self, index: int, bypass: bool) -> None:
        self._live(lambda chain: chain.set_bypass(index, bypass))
        self.spec.slots[index].bypass = bypass

    def set_mix(self, index: int, mix: float) -> None:
        self._live(lambda chain: chain.set_mix(index, mix))
        self.spec.slots[index].mix = mix

    def _live(self, change: Callable[[EffectsChain], None]) -> None:
        """Applies `change` to the running chain (its setters are thread-safe)."""
        if self.chain is not None:
            try:
                change(self.chain)
            except UserError as error:
                self.error.emit(str(error))

    def _rate_toggled(self, on: bool) -> None:
        self.spec.rate = HIGH_RATE if on else RATE
        self._structure_changed()

    def set_chain(self, spec: ChainSpec) -> bool:
        """Shows and builds `spec` (a preset, a take's chain). Each slot's description comes
        from the catalog, or from loading the plugin when the catalog lacks it."""
        infos = []
        for slot in spec.slots:
            known = next((info for info in self.catalog if info.ref == slot.ref), None)
            try:
                infos.append(known or describe(slot.ref))
            except UserError as error:
                self.error.emit(f"Cannot use this chain: {error}")
                return False
        self.spec = ChainSpec([dataclasses.replace(s, parameters=dict(s.parameters)) for s in spec.slots], spec.rate)
        self.infos = infos
        self.high_rate.blockSignals(True)
        self.high_rate.setChecked(spec.rate == HIGH_RATE)
        self.high_rate.blockSignals(False)
        return self._structure_changed()

    def _structure_changed(self) -> bool:
        self._close_lost_editors()
        self._rebuild_slots()
        return self.rebuild()

    def rebuild(self) -> bool:
        """Builds the running chain from `spec` and announces it with `chainReady`; False
        (and `error`) when a plugin cannot load: the old chain then keeps playing."""
        if not self.spec.slots:
            self.chain = None
        else:
            spec = ChainSpec(
                [dataclasses.replace(s, parameters=dict(s.parameters)) for s in self.spec.slots], self.spec.rate
            )
            try:
                self.chain = EffectsChain(spec)
            except UserError as error:
                self.error.emit(f"Could not build the effects chain: {error}")
                return False
        self.chainReady.emit(self.chain)
        return True

    def _rebuild_slots(self) -> None:
        for widget in self.slot_widgets:
            self.slots_box.removeWidget(widget)
            widget.deleteLater()
        self.slot_widgets = []
        for index, (info, slot) in enumerate(zip(self.infos, self.spec.slots, strict=True)):
            widget = SlotWidget(index, info, slot)
            widget.parameterChanged.connect(lambda name, value, i=index: self.set_parameter(i, name, value))
            widget.bypassChanged.connect(lambda on, i=index: self.set_bypass(i, on))
            widget.mixChanged.connect(lambda mix, i=index: self.set_mix(i, mix))
            widget.moveRequested.connect(lambda delta, i=index: self.move_slot(i, delta))
            widget.removeRequested.connect(lambda i=index: self.remove(i))
            widget.editorRequested.connect(lambda i=index: self.open_editor(i))
            widget.up_button.setEnabled(index > 0)
            widget.down_button.setEnabled(index < len(self.infos) - 1)
            self.slots_box.addWidget(widget)
            self.slot_widgets.append(widget)
        self.empty_label.setVisible(not self.infos)

    def _add_chosen(self) -> None:
        info = self.plugin_box.currentData()
        if info is not None:
            self.add_plugin(info)

    # ---- presets -------------------------------------------------------------------

    def current_spec(self) -> ChainSpec:
        """The chain as it sounds now: the running chain's snapshot, with plugin states."""
        return self.chain.snapshot() if self.chain is not None else ChainSpec([], self.spec.rate)

    def save_preset(self, path: str | Path | None = None) -> bool:
        if path is None:
            path, _ = QFileDialog.getSaveFileName(
                self, "Save effects preset", str(Path.home() / "chain.json"), "Effects chain (*.json)"
            )
            if not path:
                return False
        try:
            self.current_spec().save(path)
        except UserError as error:
            self.error.emit(str(error))
            return False
        self.notice.emit(f"Saved the effects chain to {path}")
        return True

    def load_preset(self, path: str | Path | None = None) -> bool:
        if path is None:
            path, _ = QFileDialog.getOpenFileName(
                self, "Load effects preset", str(Path.home()), "Effects chain (*.json)"
            )
            if not path:
                return False
        try:
            spec = ChainSpec.load(path)
        except UserError as error:
            self.error.emit(str(error))
            return False
        return self.set_chain(spec)

    # ---- the display timer ---------------------------------------------------------

    def show_stats(self, sounding: EffectsChain | None) -> None:
        """The cost of the chain that is sounding (None: none is), and the latency and NaN
        guard of that chain, or of the panel's own when none sounds."""
        if sounding is not None and sounding.block_seconds:
            share = sounding.cost_ms / (1000 * sounding.block_seconds)
            colour = theme.RECORD if share > 0.5 else theme.TEXT
            self.cost_label.setText(
                f"Cost: <span style='color:{colour}'>{sounding.cost_ms:.2f} ms per block "
                f"({100 * share:.1f}% of real time)</span>"
            )
        else:
            self.cost_label.setText("Cost: – (not playing)")
        chain = sounding or self.chain
        samples = 0 if chain is None else chain.latency_samples
        self.latency_label.setText(f"Latency: {1000 * samples / RATE:.1f} ms ({samples} samples)")
        if chain is None:
            return
        if chain is self.chain:
            for widget, latency, muted in zip(self.slot_widgets, chain.slot_latency, chain.muted, strict=True):
                widget.show_state(latency, muted)
        for text in chain.drain_notices():
            self.error.emit(f"Effects: {text}. Bypass it and back to un-mute it.")
