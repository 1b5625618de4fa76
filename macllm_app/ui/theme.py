"""The app's look: a light, macOS-like style sheet (system font, soft greys, blue accent)."""

from __future__ import annotations

import sys

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QApplication

ACCENT = "#0a84ff"

STYLE_SHEET = f"""
QMainWindow, #chatCenter, #messageContainer {{ background: #ffffff; }}
#paneSwitcher {{ background: #ececee; border-right: 1px solid #dcdce0; }}
#paneSwitcher QToolButton {{ border: none; border-radius: 8px; padding: 6px;
    color: #3c3c43; font-size: 11px; }}
#paneSwitcher QToolButton:checked {{ background: #dcdce2; color: #000; }}
#conversationSidebar {{ background: #f5f5f7; border-right: 1px solid #e3e3e8; }}
#sidebarTitle {{ font-weight: 600; font-size: 14px; color: #1d1d1f; }}
#newChatButton {{ border: 1px solid #d2d2d7; border-radius: 6px; padding: 3px 10px;
    background: #ffffff; }}
#newChatButton:hover {{ background: #f0f0f5; }}
#searchBox {{ border: 1px solid #d2d2d7; border-radius: 7px; padding: 4px 8px;
    background: #ffffff; }}
#conversationList, #searchResults {{ background: transparent; border: none;
    outline: none; }}
#conversationList::item {{ padding: 7px 8px; border-radius: 6px; color: #1d1d1f; }}
#conversationList::item:selected {{ background: {ACCENT}; color: white; }}
#conversationList::item:hover:!selected {{ background: #e8e8ed; }}
#chatTitle {{ font-size: 15px; font-weight: 600; color: #1d1d1f; }}
#contextLabel {{ color: #6e6e73; font-size: 11px; padding-right: 8px; }}
#toggleSettings {{ border: 1px solid #d2d2d7; border-radius: 6px; padding: 3px 10px; }}
#toggleSettings:checked {{ background: #e8f0fe; border-color: {ACCENT}; }}
#messageView {{ background: #ffffff; border: none; }}
#message[role="user"] {{ background: #eef4ff; border: 1px solid #dbe6fb;
    border-radius: 12px; }}
#message[role="assistant"] {{ background: #ffffff; border: 1px solid #ececf0;
    border-radius: 12px; }}
#message[highlight="true"] {{ border: 2px solid #f5c400; }}
#messageRole {{ font-weight: 600; color: #1d1d1f; font-size: 12px; }}
#messageBody {{ color: #1d1d1f; font-size: 14px; }}
#messageStats {{ color: #8e8e93; font-size: 11px; }}
#messageStats[problem="true"] {{ color: #c9342b; font-weight: 600; }}
#message QToolButton {{ color: #6e6e73; font-size: 11px; padding: 1px 5px; }}
#message QToolButton:hover {{ color: {ACCENT}; }}
#branchLabel {{ color: #6e6e73; font-size: 11px; }}
#chatNotice {{ background: #fdecea; color: #a1261d; border: 1px solid #f5c2bd;
    border-radius: 8px; padding: 8px 12px; }}
#droppedNote {{ background: #fff8e1; color: #7a5b00; padding: 6px 20px; }}
#emptyState {{ padding-top: 120px; }}
#showEarlier {{ color: {ACCENT}; }}
#composer {{ background: #fafafc; border-top: 1px solid #e5e5ea; }}
#promptEdit {{ border: 1px solid #d2d2d7; border-radius: 10px; padding: 6px 8px;
    background: #ffffff; font-size: 14px; }}
#promptEdit:focus {{ border: 1px solid {ACCENT}; }}
#sendButton {{ background: {ACCENT}; color: white; border: none; border-radius: 8px;
    padding: 6px 16px; font-weight: 600; }}
#sendButton[stop="true"] {{ background: #ff3b30; }}
#sendButton:disabled {{ background: #a7c8f5; }}
#regenerateButton {{ border: 1px solid #d2d2d7; border-radius: 8px; padding: 5px 10px;
    background: #ffffff; }}
#editBanner {{ color: {ACCENT}; font-size: 12px; }}
#conversationSettings {{ background: #f5f5f7; border-left: 1px solid #e3e3e8; }}
#panelTitle {{ font-weight: 600; font-size: 13px; }}
#statusBar {{ background: #f5f5f7; color: #3c3c43; border-top: 1px solid #e3e3e8; }}
#statusBar QLabel {{ padding: 0 6px; color: #3c3c43; }}
#statusMemory[level="warning"] {{ color: #b26a00; }}
#statusMemory[level="critical"] {{ color: #c9342b; font-weight: 600; }}
#undoButton {{ color: {ACCENT}; font-weight: 600; border: none; }}
"""


def apply_theme(app: QApplication) -> None:
    # The style sheet is a light theme; keep native widgets light to match it.
    app.styleHints().setColorScheme(Qt.ColorScheme.Light)
    if sys.platform != "darwin":
        app.setStyle("Fusion")
    font = QFont()
    font.setFamilies(["SF Pro Text", ".AppleSystemUIFont", "Helvetica Neue", "Inter",
                      "Cantarell", "DejaVu Sans"])
    font.setPointSizeF(10.5 if font.pointSizeF() < 12 else font.pointSizeF())
    app.setFont(font)
    app.setStyleSheet(STYLE_SHEET)
