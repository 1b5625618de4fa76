"""Reading and validating model files before any native code sees them: the GGUF
reader, ggml types, safetensors headers, MLX folder checks and model metadata."""
