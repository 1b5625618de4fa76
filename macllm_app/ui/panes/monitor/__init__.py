"""The Monitor pane: live graphs of memory, processes, the engine and speed."""
