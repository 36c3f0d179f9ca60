"""The dark look."""

from PyQt6.QtGui import QColor, QPalette

from app.views import theme

STYLESHEET = f"""
QWidget {{ background: {theme.BACKGROUND}; color: {theme.TEXT}; font-size: 10pt; }}
QGroupBox {{ border: 1px solid {theme.GRID}; border-radius: 6px; margin-top: 14px; padding: 8px 6px 6px 6px;
             background: {theme.PANEL}; }}
QGroupBox::title {{ subcontrol-origin: margin; left: 10px; padding: 0 4px; color: {theme.MUTED}; font-weight: 600; }}
QGroupBox QWidget {{ background: {theme.PANEL}; }}
QPushButton {{ background: #2a2f38; border: 1px solid #3a404b; border-radius: 5px; padding: 5px 10px; }}
QPushButton:hover {{ background: #333946; }}
QPushButton:disabled {{ color: #555c68; }}
QPushButton#generate {{ background: #2d6f6f; border-color: {theme.ACCENT}; font-size: 12pt; font-weight: 700; }}
QPushButton#generate:hover {{ background: #358282; }}
QPushButton#generate:disabled {{ background: #24343a; color: #6c8a8a; }}
QPushButton#record:checked {{ background: #7a2f36; border-color: {theme.RECORD}; }}
QLineEdit, QComboBox, QSpinBox, QDoubleSpinBox {{ background: #262a32; border: 1px solid #3a404b; border-radius: 4px;
             padding: 3px 5px; }}
QTableView {{ background: {theme.PANEL}; alternate-background-color: #23262e; gridline-color: {theme.GRID};
              selection-background-color: #2f4a55; border: 1px solid {theme.GRID}; }}
QHeaderView::section {{ background: #262a32; color: {theme.MUTED}; border: none; padding: 4px; }}
QProgressBar {{ background: #262a32; border: 1px solid #3a404b; border-radius: 4px; text-align: center; height: 14px; }}
QProgressBar::chunk {{ background: {theme.ACCENT}; border-radius: 3px; }}
QLabel#muted {{ color: {theme.MUTED}; }}
QWidget#banner {{ background: #4a2327; border: 1px solid {theme.RECORD}; border-radius: 5px; }}
QWidget#banner QLabel, QWidget#banner QPushButton {{ background: transparent; }}
QSplitter::handle {{ background: {theme.BACKGROUND}; }}
QStatusBar {{ color: {theme.MUTED}; }}
"""


def apply(app) -> None:
    app.setStyle("Fusion")
    palette = QPalette()
    for role, colour in (
        (QPalette.ColorRole.Window, theme.BACKGROUND),
        (QPalette.ColorRole.Base, theme.PANEL),
        (QPalette.ColorRole.Text, theme.TEXT),
        (QPalette.ColorRole.WindowText, theme.TEXT),
        (QPalette.ColorRole.Button, "#2a2f38"),
        (QPalette.ColorRole.ButtonText, theme.TEXT),
        (QPalette.ColorRole.Highlight, "#2f4a55"),
        (QPalette.ColorRole.HighlightedText, theme.TEXT),
    ):
        palette.setColor(role, QColor(colour))
    app.setPalette(palette)
    app.setStyleSheet(STYLESHEET)
