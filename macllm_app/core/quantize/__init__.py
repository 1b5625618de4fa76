"""Quantization: llama.cpp's types through its own quantizer (`llama_model_quantize`,
the code behind `llama-quantize`), run as a job; what each type costs; and the checks
that turn bad input into one line before any work starts."""
