"""Panes of the main window, switched from the sidebar."""
