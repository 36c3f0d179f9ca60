"""Model: the shipped checkpoints plus folders the user opened; the model card."""

from __future__ import annotations

import html
from pathlib import Path

from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import QComboBox, QFileDialog, QGroupBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout

from engine.model import count_params


def card_html(checkpoint) -> str:
    """A model card as rich text: name, data, parameters, NLL, preset, and the rest."""
    card = dict(checkpoint.card)
    rows = [("Model", checkpoint.name)]
    data = card.pop("data", None) or card.pop("dataset", None)
    if data:
        rows.append(("Data", data if isinstance(data, str) else ", ".join(f"{k}: {v}" for k, v in dict(data).items())))
    try:
        rows.append(("Parameters", f"{count_params(checkpoint.params):,}"))
    except Exception:  # noqa: BLE001 - a card is informative only
        pass
    for key in ("nll", "test_nll", "val_nll", "nll_bits", "eval_nll"):
        if key in card:
            value = card.pop(key)
            rows.append(("NLL", f"{value:.3f} bits/sample" if isinstance(value, (int, float)) else str(value)))
    preset = card.pop("preset", None)
    config = checkpoint.config
    rows.append(
        (
            "Shape",
            f"{preset + ', ' if preset else ''}widths {list(config.widths) if hasattr(config, 'widths') else '?'}, "
            f"pooling {list(config.pooling) if hasattr(config, 'pooling') else '?'}",
        )
    )
    card.pop("name", None)
    for key, value in card.items():
        if isinstance(value, (str, int, float, bool)):
            rows.append((key.replace("_", " ").capitalize(), str(value)))
    rows.append(("Folder", str(checkpoint.path)))
    body = "".join(
        f"<tr><td style='color:#7b8494; padding-right:8px'>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>"
        for k, v in rows
    )
    return f"<table>{body}</table>"


class ModelPanel(QGroupBox):
    checkpointChosen = pyqtSignal(str)  # path

    def __init__(self, parent=None):
        super().__init__("Model", parent)
        self.combo = QComboBox()
        self.combo.setMinimumContentsLength(14)
        self.combo.activated.connect(lambda i: self.checkpointChosen.emit(self.combo.itemData(i) or ""))
        self.open_button = QPushButton("Open folder…")
        self.open_button.clicked.connect(self.open_folder)
        row = QHBoxLayout()
        row.addWidget(self.combo, 1)
        row.addWidget(self.open_button)
        self.card = QLabel("No model loaded")
        self.card.setWordWrap(True)
        self.card.setTextInteractionFlags(
            self.card.textInteractionFlags() | self.card.textInteractionFlags().TextSelectableByMouse
        )
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.card)

    def set_checkpoints(self, shipped: list[Path], opened: list[str], current: str = "") -> None:
        self.combo.blockSignals(True)
        self.combo.clear()
        for path in shipped:
            self.combo.addItem(f"{path.name} (shipped)", str(path))
        for name in opened:
            if self.combo.findData(name) < 0:
                self.combo.addItem(Path(name).name, name)
        if self.combo.count() == 0:
            self.combo.addItem("(no checkpoint: open a folder)", "")
        index = self.combo.findData(current)
        self.combo.setCurrentIndex(max(0, index))
        self.combo.blockSignals(False)

    def add_checkpoint(self, path: str) -> None:
        if self.combo.findData("") >= 0:
            self.combo.removeItem(self.combo.findData(""))
        if self.combo.findData(path) < 0:
            self.combo.addItem(Path(path).name, path)
        self.combo.setCurrentIndex(self.combo.findData(path))

    def current_path(self) -> str:
        return self.combo.currentData() or ""

    def open_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a checkpoint folder")
        if folder:
            self.add_checkpoint(folder)
            self.checkpointChosen.emit(folder)

    def show_card(self, checkpoint) -> None:
        self.card.setText(card_html(checkpoint))

    def show_message(self, text: str, error: bool = False) -> None:
        colour = "#e06c75" if error else "#7b8494"
        self.card.setText(f"<span style='color:{colour}'>{html.escape(text)}</span>")
