"""A dark theme: reading rooms are dim, and a bright UI around the images hurts contrast."""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

STYLE = """
QMainWindow, QDialog { background: #1b1d20; }
QDockWidget::title { background: #24272b; padding: 4px 8px; color: #c8ccd2; }
QLabel#Muted { color: #8d939b; }
QLabel#Notice { background: #5a2222; color: #ffdede; padding: 3px 8px; border-radius: 3px; font-weight: bold; }
QLabel#PaneTitle { color: #e8e8e8; background: rgba(0,0,0,140); padding: 2px 6px; border-radius: 3px; }
QLabel#OodBadge { color: #1a1a1a; background: #ffb347; padding: 3px 8px; border-radius: 3px; font-weight: bold; }
QLabel#PaneBadge { color: #ffd27a; background: rgba(0,0,0,170); padding: 6px 14px; border-radius: 4px;
                   font-size: 15px; }
QFrame#ViewPane { border: 1px solid #2c2f33; }
QFrame#ViewPane[highlight="true"] { border: 2px solid #f6b26b; }
#NotificationBar QLabel { color: #ffffff; }
#NotificationBar QPushButton { padding: 2px 10px; }
QTableView { gridline-color: #2c2f33; selection-background-color: #2d5f8a; }
QHeaderView::section { background: #24272b; color: #c8ccd2; border: 0; padding: 3px 6px; }
QStatusBar { background: #17191c; color: #c8ccd2; }
"""


def apply_dark_theme(app: QApplication) -> None:
    app.setStyle("Fusion")
    palette = QPalette()
    colours = {
        QPalette.ColorRole.Window: "#1f2124",
        QPalette.ColorRole.WindowText: "#d6d9de",
        QPalette.ColorRole.Base: "#17191c",
        QPalette.ColorRole.AlternateBase: "#202327",
        QPalette.ColorRole.Text: "#d6d9de",
        QPalette.ColorRole.Button: "#2a2d31",
        QPalette.ColorRole.ButtonText: "#d6d9de",
        QPalette.ColorRole.Highlight: "#2d5f8a",
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.ToolTipBase: "#2a2d31",
        QPalette.ColorRole.ToolTipText: "#e8e8e8",
        QPalette.ColorRole.PlaceholderText: "#6d737b",
        QPalette.ColorRole.Link: "#6fa8dc",
    }
    for role, colour in colours.items():
        palette.setColor(role, QColor(colour))
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor("#5d636b"))
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor("#5d636b"))
    app.setPalette(palette)
    app.setStyleSheet(STYLE)
