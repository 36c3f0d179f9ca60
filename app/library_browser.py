"""The sample library browser: a sortable, filterable table of takes with waveform
thumbnails; play, rename, star, delete with undo, export dry or processed (also by drag
and drop), and each take's effects chain: load it into the effects panel, or re-render
the take through the panel's chain."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

from PyQt6.QtCore import (
    QAbstractTableModel,
    QItemSelectionModel,
    QMimeData,
    QModelIndex,
    QSortFilterProxyModel,
    Qt,
    QUrl,
    pyqtSignal,
)
from PyQt6.QtGui import QColor, QDrag, QKeySequence, QPainter, QPen, QShortcut
from PyQt6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QProgressBar,
    QPushButton,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app import workers
from app.library import EXPORT_RATES, ExportAudio, Library, LibraryError, Take
from app.views import theme
from engine.effects import ChainSpec, EffectsChain
from engine.errors import UserError

COLUMNS = ["★", "Waveform", "Name", "Checkpoint", "Date", "Length", "Settings", "Effects"]
STAR, WAVE, NAME, CHECKPOINT, DATE, LENGTH, SETTINGS, EFFECTS = range(len(COLUMNS))
TakeRole = Qt.ItemDataRole.UserRole + 1
SortRole = Qt.ItemDataRole.UserRole + 2


def chain_of(take: Take) -> ChainSpec | None:
    """The take's stored effects chain, None when it has none."""
    return ChainSpec.from_json(take.effects) if take.effects else None


def _chain_summary(take: Take) -> str:
    try:
        chain = chain_of(take)
    except ValueError:
        return "(unreadable)"
    if chain is None:
        return ""
    names = [slot.ref.name + (" (bypassed)" if slot.bypass else "") for slot in chain.slots]
    return " → ".join(names) + (" @ 48 kHz" if chain.rate != 16000 else "")


def _local_date(iso: str) -> str:
    try:
        return dt.datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return iso


class TakesModel(QAbstractTableModel):
    error = pyqtSignal(str)

    def __init__(self, library: Library, parent=None):
        super().__init__(parent)
        self.library = library
        self.rows: list[Take] = []
        self.refresh()

    def refresh(self) -> None:
        self.beginResetModel()
        self.rows = self.library.takes()
        self.endResetModel()

    def rowCount(self, parent: QModelIndex | None = None) -> int:
        return 0 if parent is not None and parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex | None = None) -> int:
        return len(COLUMNS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> str | None:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def flags(self, index: QModelIndex) -> Qt.ItemFlag:
        flags = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsDragEnabled
        if index.column() == NAME:
            flags |= Qt.ItemFlag.ItemIsEditable
        return flags

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid():
            return None
        take = self.rows[index.row()]
        column = index.column()
        if role == TakeRole:
            return take
        if role == Qt.ItemDataRole.DisplayRole or role == Qt.ItemDataRole.EditRole:
            if column == STAR:
                return "★" if take.starred else "☆"
            if column == NAME:
                return take.name + ("  (recovered)" if take.recovered and role == Qt.ItemDataRole.DisplayRole else "")
            if column == CHECKPOINT:
                return take.checkpoint
            if column == DATE:
                return _local_date(take.created)
            if column == LENGTH:
                return f"{take.duration:.1f} s"
            if column == SETTINGS:
                parts = [
                    f"T {take.temperature:g}" if take.temperature is not None else "",
                    f"p {take.top_p:g}" if take.top_p is not None else "",
                    f"random seed {take.random_seed}" if take.random_seed is not None else "",
                    f"{take.voices} voices" if take.voices > 1 else "",
                    "from seed audio" if take.seed_audio else "",
                ]
                return ", ".join(p for p in parts if p)
            if column == EFFECTS:
                return _chain_summary(take)
        if role == SortRole:
            return {
                STAR: int(take.starred),
                WAVE: take.frames,
                NAME: take.name.lower(),
                CHECKPOINT: take.checkpoint,
                DATE: take.created,
                LENGTH: take.frames,
                SETTINGS: take.temperature or 0,
                EFFECTS: _chain_summary(take),
            }[column]
        if role == Qt.ItemDataRole.ForegroundRole and column == STAR and take.starred:
            return QColor(theme.SEED)
        if role == Qt.ItemDataRole.ToolTipRole:
            seed_audio = f"\nseed audio: {take.seed_audio}" if take.seed_audio else ""
            return f"{take.name}\n{take.checkpoint_path or take.checkpoint}\n{take.path}{seed_audio}"
        return None

    def setData(self, index: QModelIndex, value: object, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if index.column() != NAME or role != Qt.ItemDataRole.EditRole:
            return False
        take = self.rows[index.row()]
        try:
            self.library.rename(take.id, str(value))
        except LibraryError as error:
            self.error.emit(str(error))
            return False
        self.rows[index.row()] = self.library.get(take.id)
        self.dataChanged.emit(index, index)
        return True

    def toggle_star(self, row: int) -> None:
        take = self.rows[row]
        self.library.set_starred(take.id, not take.starred)
        self.rows[row] = self.library.get(take.id)
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(COLUMNS) - 1))


class TakesFilter(QSortFilterProxyModel):
    """Filters by name text, checkpoint, starred, and age; sorts by SortRole."""

    DATES = {"Any date": None, "Today": 1, "Last 7 days": 7, "Last 30 days": 30}

    def __init__(self, takes: TakesModel, parent: QWidget | None = None):
        super().__init__(parent)
        self.takes = takes  # the source model, kept typed (sourceModel() is a QAbstractItemModel | None)
        self.setSourceModel(takes)
        self.text = ""
        self.checkpoint = ""
        self.starred_only = False
        self.days: int | None = None
        self.setSortRole(SortRole)

    def set_filter(self, **values: object) -> None:
        for key, value in values.items():
            setattr(self, key, value)
        self.invalidateFilter()

    def filterAcceptsRow(self, row: int, parent: QModelIndex) -> bool:
        take = self.takes.rows[row]
        if self.text and self.text.lower() not in take.name.lower():
            return False
        if self.checkpoint and take.checkpoint != self.checkpoint:
            return False
        if self.starred_only and not take.starred:
            return False
        if self.days is not None:
            created = dt.datetime.fromisoformat(take.created)
            now = dt.datetime.now(dt.UTC)
            if self.days == 1:
                if created.astimezone().date() != now.astimezone().date():
                    return False
            elif now - created > dt.timedelta(days=self.days):
                return False
        return True


class ThumbnailDelegate(QStyledItemDelegate):
    def paint(self, painter: QPainter | None, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        take: Take | None = index.data(TakeRole)
        if painter is None:  # Qt always passes one; the stubs allow None
            return
        if option.state & option.state.State_Selected:
            painter.fillRect(option.rect, option.palette.highlight())
        if take is None:
            return
        rect = option.rect.adjusted(4, 3, -4, -3)
        mins, maxs = take.thumbnail
        n = mins.size
        if n == 0 or rect.width() <= 0:
            return
        painter.save()
        painter.setPen(QPen(QColor(theme.ACCENT), 1))
        mid, half = rect.center().y(), rect.height() / 2
        columns = rect.width()
        seed_fraction = take.seed_frames / take.frames if take.frames else 0
        for x in range(columns):
            i = min(n - 1, int(x * n / columns))
            if x < seed_fraction * columns:
                painter.setPen(QPen(QColor(theme.SEED), 1))
            else:
                painter.setPen(QPen(QColor(theme.ACCENT), 1))
            painter.drawLine(rect.left() + x, int(mid - maxs[i] * half), rect.left() + x, int(mid - mins[i] * half))
        painter.restore()


class TakesView(QTableView):
    """A table whose rows can be dragged out to a file manager: the dragged takes are
    exported to a temporary folder in the browser's export format first."""

    def __init__(self, browser: LibraryBrowser):
        super().__init__(browser)
        self.browser = browser
        self.setDragEnabled(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)

    def mimeData_for_selection(self) -> QMimeData:
        paths = self.browser.export_for_drag(self.browser.selected_ids())
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
        return mime

    def selection(self) -> QItemSelectionModel:
        """The selection model (setModel made it; the stubs allow None)."""
        selection = self.selectionModel()
        if selection is None:
            raise RuntimeError("the takes table has no model yet")
        return selection

    def startDrag(self, actions: Qt.DropAction) -> None:
        if not self.browser.selected_ids():
            return
        try:
            mime = self.mimeData_for_selection()
        except (LibraryError, UserError, ValueError) as error:
            self.browser.show_error(str(error))
            return
        drag = QDrag(self)
        drag.setMimeData(mime)
        drag.exec(Qt.DropAction.CopyAction)


class LibraryBrowser(QWidget):
    playRequested = pyqtSignal(object)  # Take
    stopRequested = pyqtSignal()
    useAsSeedAudioRequested = pyqtSignal(object)  # Take
    loadChainRequested = pyqtSignal(object)  # ChainSpec: into the effects panel
    error = pyqtSignal(str)
    status = pyqtSignal(str)

    def __init__(self, library: Library, settings=None, current_chain=None, parent=None):
        """current_chain: () -> ChainSpec, the effects panel's chain (for re-rendering)."""
        super().__init__(parent)
        self.library = library
        self.settings = settings
        self.current_chain = current_chain
        self.undo_stack: list[list[str]] = []
        self.export_task: workers.Task | None = None
        self.model = TakesModel(library, self)
        self.model.error.connect(self.show_error)
        self.proxy = TakesFilter(self.model, self)

        self.search = QLineEdit()
        self.search.setPlaceholderText("Filter by name…")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(lambda text: self.proxy.set_filter(text=text))
        self.checkpoint_filter = QComboBox()
        self.checkpoint_filter.currentIndexChanged.connect(self._checkpoint_filter_changed)
        self.date_filter = QComboBox()
        self.date_filter.addItems(list(TakesFilter.DATES))
        self.date_filter.currentTextChanged.connect(lambda t: self.proxy.set_filter(days=TakesFilter.DATES[t]))
        self.starred_filter = QCheckBox("★ only")
        self.starred_filter.toggled.connect(lambda on: self.proxy.set_filter(starred_only=on))
        top = QHBoxLayout()
        top.addWidget(QLabel("<b>Library</b>"))
        top.addWidget(self.search, 1)
        top.addWidget(self.checkpoint_filter)
        top.addWidget(self.date_filter)
        top.addWidget(self.starred_filter)

        self.table = TakesView(self)
        self.table.setModel(self.proxy)
        self.table.setItemDelegateForColumn(WAVE, ThumbnailDelegate(self.table))
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(DATE, Qt.SortOrder.DescendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(
            QAbstractItemView.EditTrigger.EditKeyPressed | QAbstractItemView.EditTrigger.SelectedClicked
        )
        rows_header, header = self.table.verticalHeader(), self.table.horizontalHeader()
        if rows_header is None or header is None:  # a QTableView makes both; the stubs allow None
            raise RuntimeError("the takes table has no headers")
        rows_header.hide()
        rows_header.setDefaultSectionSize(30)
        self.table.setShowGrid(False)
        self.table.setAlternatingRowColors(True)
        header.setSectionResizeMode(NAME, QHeaderView.ResizeMode.Stretch)
        header.resizeSection(STAR, 28)
        header.resizeSection(WAVE, 150)
        header.resizeSection(CHECKPOINT, 120)
        header.resizeSection(DATE, 125)
        header.resizeSection(LENGTH, 60)
        header.resizeSection(SETTINGS, 170)
        header.resizeSection(EFFECTS, 140)
        self.table.doubleClicked.connect(self._double_clicked)
        self.table.clicked.connect(self._clicked)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)

        self.play_button = QPushButton("▶ Play")
        self.play_button.clicked.connect(self.play_selected)
        self.stop_button = QPushButton("■ Stop")
        self.stop_button.clicked.connect(self.stopRequested)
        self.star_button = QPushButton("★ Star")
        self.star_button.clicked.connect(self.star_selected)
        self.delete_button = QPushButton("Delete")
        self.delete_button.clicked.connect(self.delete_selected)
        self.undo_button = QPushButton("Undo delete")
        self.undo_button.setEnabled(False)
        self.undo_button.clicked.connect(self.undo_delete)
        self.format_box = QComboBox()
        self.format_box.addItems(["wav", "flac", "ogg"])
        self.rate_box = QComboBox()
        for rate in EXPORT_RATES:
            self.rate_box.addItem(f"{rate / 1000:g} kHz", rate)
        self.mono_box = QCheckBox("mono")
        self.mono_box.setToolTip(
            "Mix the voices of a multi-voice take into one channel\n(otherwise each voice is a channel)"
        )
        self.audio_box = QComboBox()
        self.audio_box.addItem("dry", ExportAudio.DRY)
        self.audio_box.addItem("processed", ExportAudio.PROCESSED)
        self.audio_box.setToolTip(
            "dry: what the model generated\n"
            "processed: re-rendered through the take's effects chain, "
            "with its tail (mono)"
        )
        self.chain_button = QPushButton("Load its effects")
        self.chain_button.setToolTip("Put the selected take's effects chain into the Effects panel")
        self.chain_button.clicked.connect(self.load_chain_of_selected)
        self.rerender_button = QPushButton("Re-render with current effects")
        self.rerender_button.setToolTip(
            "Store the Effects panel's chain with the selected takes: "
            "their processed audio "
            "is re-rendered from the dry audio through it"
        )
        self.rerender_button.clicked.connect(self.apply_current_chain)
        self.export_button = QPushButton("Export…")
        self.export_button.clicked.connect(lambda: self.export_selected())
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(120)
        self.progress.setTextVisible(False)
        self.progress.hide()
        bottom = QHBoxLayout()
        for button in (self.play_button, self.stop_button, self.star_button, self.delete_button, self.undo_button):
            bottom.addWidget(button)
        bottom.addStretch(1)
        bottom.addWidget(self.progress)
        export_widgets = (
            QLabel("Export"),
            self.audio_box,
            self.format_box,
            self.rate_box,
            self.mono_box,
            self.export_button,
        )
        for widget in export_widgets:
            bottom.addWidget(widget)
        effects_row = QHBoxLayout()
        effects_row.addStretch(1)
        effects_row.addWidget(self.chain_button)
        effects_row.addWidget(self.rerender_button)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.table, 1)
        layout.addLayout(bottom)
        layout.addLayout(effects_row)

        QShortcut(QKeySequence.StandardKey.Undo, self).activated.connect(self.undo_delete)
        QShortcut(QKeySequence.StandardKey.Delete, self.table).activated.connect(self.delete_selected)
        if settings is not None:
            self.format_box.setCurrentText(settings.get("export/format"))
            self.rate_box.setCurrentIndex(max(0, self.rate_box.findData(settings.get("export/rate"))))
            self.mono_box.setChecked(settings.get("export/mono"))
            self.audio_box.setCurrentIndex(max(0, self.audio_box.findData(ExportAudio(settings.get("export/audio")))))
        self.refresh()

    # ---- data ----------------------------------------------------------------------

    def refresh(self) -> None:
        selected = set(self.selected_ids())
        self.model.refresh()
        current = self.checkpoint_filter.currentData()
        self.checkpoint_filter.blockSignals(True)
        self.checkpoint_filter.clear()
        self.checkpoint_filter.addItem("All checkpoints", "")
        for name in self.library.checkpoints():
            self.checkpoint_filter.addItem(name, name)
        self.checkpoint_filter.setCurrentIndex(max(0, self.checkpoint_filter.findData(current or "")))
        self.checkpoint_filter.blockSignals(False)
        if selected:
            self.select_ids(selected)

    def _checkpoint_filter_changed(self, _):
        self.proxy.set_filter(checkpoint=self.checkpoint_filter.currentData() or "")

    def visible_takes(self) -> list[Take]:
        return [self.proxy.index(r, 0).data(TakeRole) for r in range(self.proxy.rowCount())]

    def selected_ids(self) -> list[str]:
        rows = sorted({i.row() for i in self.table.selection().selectedRows()})
        return [self.proxy.index(r, 0).data(TakeRole).id for r in rows]

    def select_ids(self, ids) -> None:
        ids = set(ids)
        selection = self.table.selection()
        selection.clearSelection()
        whole_rows = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
        for r in range(self.proxy.rowCount()):
            if self.proxy.index(r, 0).data(TakeRole).id in ids:
                selection.select(self.proxy.index(r, 0), whole_rows)

    def _source_row(self, take_id: str) -> int:
        return next(i for i, t in enumerate(self.model.rows) if t.id == take_id)

    # ---- actions -------------------------------------------------------------------

    def show_error(self, text: str) -> None:
        self.error.emit(text)

    def play_selected(self) -> None:
        ids = self.selected_ids()
        if ids:
            self.playRequested.emit(self.library.get(ids[0]))

    def rename(self, take_id: str, name: str) -> None:
        row = self._source_row(take_id)
        self.model.setData(self.model.index(row, NAME), name)

    def star_selected(self) -> None:
        for take_id in self.selected_ids():
            self.model.toggle_star(self._source_row(take_id))

    def delete_selected(self) -> None:
        ids = self.selected_ids()
        if not ids:
            return
        try:
            deleted = self.library.delete(ids)
        except (LibraryError, OSError) as error:
            self.show_error(f"Could not delete: {error}")
            return
        self.undo_stack.append(deleted)
        self.undo_button.setEnabled(True)
        self.refresh()
        self.status.emit(f"Deleted {len(deleted)} take(s). Undo with Ctrl+Z.")

    def undo_delete(self) -> None:
        if not self.undo_stack:
            return
        ids = self.undo_stack.pop()
        try:
            self.library.undelete(ids)
        except (LibraryError, OSError) as error:
            self.show_error(str(error))
        self.undo_button.setEnabled(bool(self.undo_stack))
        self.refresh()
        self.select_ids(ids)
        self.status.emit(f"Restored {len(ids)} take(s).")

    def export_options(self) -> tuple[str, int, bool, ExportAudio]:
        return (
            self.format_box.currentText(),
            int(self.rate_box.currentData()),
            self.mono_box.isChecked(),
            self.audio_box.currentData(),
        )

    def load_chain_of_selected(self) -> None:
        ids = self.selected_ids()
        if not ids:
            self.show_error("Select a take whose effects to load.")
            return
        take = self.library.get(ids[0])
        try:
            chain = chain_of(take)
        except ValueError as error:
            self.show_error(f"The effects stored with “{take.name}” cannot be read: {error}")
            return
        if chain is None:
            self.show_error(f"“{take.name}” was played without effects.")
            return
        self.loadChainRequested.emit(chain)

    def apply_current_chain(self) -> None:
        """Stores the effects panel's chain with the selected takes (their dry audio stays)."""
        ids = self.selected_ids()
        if not ids or self.current_chain is None:
            self.show_error("Select the takes to re-render with the current effects.")
            return
        chain = self.current_chain()
        effects = chain.to_json() if chain.slots else ""
        try:
            for take_id in ids:
                self.library.set_effects(take_id, effects)
        except LibraryError as error:
            self.show_error(str(error))
        self.refresh()
        self.status.emit(f"{len(ids)} take(s) now render through the current effects")

    def export_selected(self, folder: str | Path | None = None, ids: list[str] | None = None):
        """Exports in a worker thread; asks for a folder when none is given. Returns the task."""
        ids = ids if ids is not None else self.selected_ids()
        if not ids:
            self.show_error("Select one or more takes to export.")
            return None
        if folder is None:
            start = self.settings.get("export/folder") if self.settings else ""
            folder = QFileDialog.getExistingDirectory(self, "Export takes to", start or str(Path.home()))
            if not folder:
                return None
        fmt, rate, mono, audio = self.export_options()
        try:
            chains = self.chains_for(ids, audio)
        except (LibraryError, UserError, ValueError) as error:
            self.show_error(f"Cannot export the processed audio: {error}")
            return None
        if self.settings is not None:
            self.settings.set("export/folder", str(folder))
            self.settings.set("export/format", fmt)
            self.settings.set("export/rate", rate)
            self.settings.set("export/mono", mono)
            self.settings.set("export/audio", str(audio))
        self.progress.setRange(0, len(ids))
        self.progress.setValue(0)
        self.progress.show()
        self.export_button.setEnabled(False)

        def work(task):
            return self.library.export(
                ids,
                folder,
                fmt,
                rate,
                mono=mono,
                audio=audio,
                chains=chains,
                progress=task.progress,
                cancelled=lambda: task.cancelled,
            )

        def finished(paths):
            self.progress.hide()
            self.export_button.setEnabled(True)
            self.last_export = paths
            self.status.emit(f"Exported {len(paths)} file(s) to {folder}")

        def failed(text):
            self.progress.hide()
            self.export_button.setEnabled(True)
            self.show_error(text)

        self.export_task = workers.run_task(
            work, done=finished, failed=failed, progress=lambda i, n: self.progress.setValue(i), name="export"
        )
        return self.export_task

    def export_for_drag(self, ids: list[str]) -> list[Path]:
        folder = Path(tempfile.mkdtemp(prefix="harmonic-drag-"))
        fmt, rate, mono, audio = self.export_options()
        return self.library.export(ids, folder, fmt, rate, mono=mono, audio=audio, chains=self.chains_for(ids, audio))

    def chains_for(self, ids: list[str], audio: ExportAudio) -> dict[str, EffectsChain]:
        """The takes' effects chains for a processed export, built here on the GUI thread
        (pedalboard loads VST3 plugins on the main thread only); the export renders them in
        its worker."""
        if audio is not ExportAudio.PROCESSED:
            return {}
        takes = [self.library.get(take_id) for take_id in ids]
        return {take.id: EffectsChain(ChainSpec.from_json(take.effects)) for take in takes if take.effects}

    def _clicked(self, index):
        if index.column() == STAR:
            self.model.toggle_star(self.proxy.mapToSource(index).row())

    def _double_clicked(self, index):
        if index.column() not in (NAME, STAR):
            self.playRequested.emit(index.data(TakeRole))

    def _context_menu(self, position):
        index = self.table.indexAt(position)
        if not index.isValid():
            return
        menu = QMenu(self)
        menu.addAction("Play", self.play_selected)
        menu.addAction("Rename", lambda: self.table.edit(self.proxy.index(index.row(), NAME)))
        menu.addAction("Star / unstar", self.star_selected)
        menu.addAction("Use as seed audio", lambda: self.useAsSeedAudioRequested.emit(index.data(TakeRole)))
        menu.addAction("Load its effects", self.load_chain_of_selected)
        menu.addAction("Re-render with current effects", self.apply_current_chain)
        menu.addSeparator()
        menu.addAction("Export…", lambda: self.export_selected())
        menu.addAction("Delete", self.delete_selected)
        menu.exec(self.table.viewport().mapToGlobal(position))
