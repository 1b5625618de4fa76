"""Everything that is not a widget. Never imports Qt."""
