"""The Fine-tune pane: train an adapter (or the whole model) on a JSONL dataset."""
