"""MacLLM: run, quantize and fine-tune local language models."""

__version__ = "0.1.0"
