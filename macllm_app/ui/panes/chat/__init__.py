"""The Chat pane and its parts."""
