"""The Library pane: models on disk, import, and the Hugging Face Hub browser."""
