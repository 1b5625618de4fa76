"""Model format conversion: GGUF -> MLX folder, MLX folder -> F16 GGUF."""
