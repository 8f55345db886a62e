"""The dark reading-room theme: near-black surfaces, low-glare grey text, one accent colour.

Reading rooms are dim and radiologists judge grey levels, so everything around the film is dark and
desaturated; colour is kept for meaning (urgent findings, the untrained-model banner, CAMs).
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

BACKGROUND = "#0b0d10"
SURFACE = "#15181d"
SURFACE_HIGH = "#1e232a"
BORDER = "#2a3038"
TEXT = "#c9ced6"
TEXT_DIM = "#7d8590"
ACCENT = "#3aa3c9"
WARNING = "#e0a030"
DANGER = "#d9534f"
OK = "#4caf7a"
# Prevalence badge colours: head (common), medium, tail (rare).
BADGE = {"head": "#55606e", "medium": "#3d6f8f", "tail": "#8f5a3d"}

STYLESHEET = f"""
QWidget {{ background: {SURFACE}; color: {TEXT}; font-size: 10pt; }}
QMainWindow, QDockWidget > QWidget {{ background: {SURFACE}; }}
QDockWidget::title {{ background: {SURFACE_HIGH}; padding: 4px 6px; color: {TEXT_DIM}; }}
QMenuBar, QMenu, QStatusBar, QToolBar {{ background: {BACKGROUND}; color: {TEXT}; }}
QMenu::item:selected, QMenuBar::item:selected {{ background: {SURFACE_HIGH}; }}
QToolBar {{ border: 0; spacing: 2px; }}
QToolButton {{ background: transparent; border: 1px solid transparent; padding: 3px 6px; }}
QToolButton:hover {{ border-color: {BORDER}; }}
QToolButton:checked {{ background: {SURFACE_HIGH}; border-color: {ACCENT}; }}
QPushButton {{ background: {SURFACE_HIGH}; border: 1px solid {BORDER}; padding: 4px 10px;
               border-radius: 3px; }}
QPushButton:hover {{ border-color: {ACCENT}; }}
QPushButton:disabled {{ color: {TEXT_DIM}; }}
QLineEdit, QComboBox, QSpinBox, QDoubleSpinBox {{ background: {BACKGROUND}; border: 1px solid {BORDER};
               padding: 2px 4px; border-radius: 2px; }}
QTreeView, QListView, QTableView, QTreeWidget, QTableWidget {{ background: {BACKGROUND};
               alternate-background-color: {SURFACE}; border: 1px solid {BORDER};
               selection-background-color: #24475a; }}
QHeaderView::section {{ background: {SURFACE_HIGH}; color: {TEXT_DIM}; border: 0;
               padding: 3px 6px; }}
QProgressBar {{ background: {BACKGROUND}; border: 1px solid {BORDER}; text-align: center;
               height: 14px; }}
QProgressBar::chunk {{ background: {ACCENT}; }}
QSlider::groove:horizontal {{ height: 4px; background: {BORDER}; }}
QSlider::handle:horizontal {{ width: 12px; margin: -5px 0; background: {TEXT_DIM};
               border-radius: 6px; }}
QTabWidget::pane {{ border: 1px solid {BORDER}; }}
QTabBar::tab {{ background: {SURFACE}; padding: 4px 10px; color: {TEXT_DIM}; }}
QTabBar::tab:selected {{ background: {SURFACE_HIGH}; color: {TEXT}; }}
QLabel#banner {{ background: #5a1e1b; color: #ffd9d6; padding: 6px; font-weight: bold;
               border: 1px solid {DANGER}; }}
QLabel#hint {{ color: {TEXT_DIM}; padding: 12px; }}
QLabel#overlayText {{ background: rgba(11, 13, 16, 170); color: {TEXT}; padding: 2px 4px; }}
"""


def configure_pyqtgraph() -> None:
    """Row-major numpy images and dark plot colours for every pyqtgraph item."""
    pg.setConfigOptions(
        imageAxisOrder="row-major", background=BACKGROUND, foreground=TEXT_DIM, antialias=False
    )


def apply_theme(app: QApplication) -> None:
    """Install the dark palette and stylesheet on the application."""
    configure_pyqtgraph()
    app.setStyle("Fusion")
    palette = QPalette()
    roles = {
        QPalette.ColorRole.Window: SURFACE,
        QPalette.ColorRole.WindowText: TEXT,
        QPalette.ColorRole.Base: BACKGROUND,
        QPalette.ColorRole.AlternateBase: SURFACE,
        QPalette.ColorRole.Text: TEXT,
        QPalette.ColorRole.Button: SURFACE_HIGH,
        QPalette.ColorRole.ButtonText: TEXT,
        QPalette.ColorRole.Highlight: "#24475a",
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.ToolTipBase: SURFACE_HIGH,
        QPalette.ColorRole.ToolTipText: TEXT,
        QPalette.ColorRole.PlaceholderText: TEXT_DIM,
    }
    for role, colour in roles.items():
        palette.setColor(role, QColor(colour))
    app.setPalette(palette)
    app.setStyleSheet(STYLESHEET)
