"""Fine-tuning: datasets, LoRA/QLoRA/DoRA/full training, fuse, adapter export."""
