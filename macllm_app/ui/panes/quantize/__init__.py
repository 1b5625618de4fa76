"""The Quantize pane: llama.cpp and MLX quantization with measured quality."""
