"""How much memory a fine-tuning run will take at its peak, before it starts.

The seed's table (LoRA on a 7B model in 4 bits: ~6 GB; full fine-tuning in
16 bits: ~4x the weights) as a formula over the model's shapes:

    weights      the base as loaded (QLoRA: 4-bit, groups of 64)
    trainable    parameters trained, with their gradients and the optimizer's
                 state (Adam: two moments; SGD: none), in float32 for adapters
    activations  what backpropagation keeps per token for each trained layer
                 (inputs of every matrix product, attention scores, the MLP's
                 wide middle) or, with gradient checkpointing, each layer's input
                 and one layer's working set
    logits       the output layer's logits, their softmax and gradient, float32

The constants were fitted on measured runs (`tests/integration/test_finetune_memory.py`
checks them against mlx's peak on a tiny model and on the default model).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from macllm_app.core.finetune.config import QLORA_BITS, QLORA_GROUP_SIZE, TrainConfig
from macllm_app.core.units import human_size

#: Optimizer state per trained parameter, in parameters' worth.
_OPTIMIZER_SLOTS = {"adam": 2, "adamw": 2, "sgd": 0, "adafactor": 1}
#: MLX's runtime, kernels and allocator slack, on top of the arrays.
_FIXED_BYTES = 200 * 1024**2


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs from a model's config.json."""

    n_layers: int
    hidden: int
    intermediate: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    vocab: int
    dtype_bytes: float  # bytes per weight as stored (2 for float16, 0.5625 for 4-bit g64)
    quantized: bool

    @property
    def layer_params(self) -> int:
        attention = self.hidden * self.head_dim * (2 * self.n_heads + 2 * self.n_kv_heads)
        return attention + 3 * self.hidden * self.intermediate

    @property
    def n_params(self) -> int:
        return self.n_layers * self.layer_params + 2 * self.vocab * self.hidden

    def lora_params(self, rank: int) -> int:
        """LoRA parameters of one layer (every linear layer adapted, as mlx-lm does)."""
        q_out = self.n_heads * self.head_dim
        kv_out = self.n_kv_heads * self.head_dim
        shapes = [(self.hidden, q_out), (self.hidden, kv_out), (self.hidden, kv_out),
                  (q_out, self.hidden), (self.hidden, self.intermediate),
                  (self.hidden, self.intermediate), (self.intermediate, self.hidden)]
        return sum(rank * (i + o) for i, o in shapes)


def read_shape(folder: Path) -> ModelShape:
    """The shape of the MLX model in `folder` (config.json)."""
    config: dict[str, Any] = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    hidden = int(config["hidden_size"])
    heads = int(config["num_attention_heads"])
    quant = config.get("quantization") or config.get("quantization_config") or {}
    if quant:
        bits, group = int(quant.get("bits", 4)), int(quant.get("group_size", 64))
        dtype_bytes = (bits + 32 / group) / 8  # the weights plus a float16 scale and bias
    else:
        dtype = str(config.get("torch_dtype") or config.get("dtype") or "float16")
        dtype_bytes = 4.0 if dtype == "float32" else 2.0
    return ModelShape(
        n_layers=int(config["num_hidden_layers"]), hidden=hidden,
        intermediate=int(config["intermediate_size"]), n_heads=heads,
        n_kv_heads=int(config.get("num_key_value_heads") or heads),
        head_dim=int(config.get("head_dim") or hidden // heads),
        vocab=int(config["vocab_size"]), dtype_bytes=dtype_bytes, quantized=bool(quant))


@dataclass(frozen=True)
class MemoryEstimate:
    weights: int
    trainable: int
    activations: int
    logits: int
    trainable_params: int

    @property
    def total(self) -> int:
        return self.weights + self.trainable + self.activations + self.logits + _FIXED_BYTES

    def describe(self) -> str:
        return (f"about {human_size(self.total)} at its peak (weights "
                f"{human_size(self.weights)}, training state {human_size(self.trainable)}, "
                f"activations {human_size(self.activations + self.logits)})")


def estimate(shape: ModelShape, config: TrainConfig) -> MemoryEstimate:
    """Peak memory of training `shape` with `config` (see the module docstring)."""
    layers = config.layers_for(shape.n_layers)
    weight_bytes = shape.dtype_bytes
    if config.method == "qlora" and not shape.quantized:
        weight_bytes = (QLORA_BITS + 32 / QLORA_GROUP_SIZE) / 8
    weights = int(shape.n_params * weight_bytes)
    slots = _OPTIMIZER_SLOTS[config.optimizer]
    if config.method == "full":
        trainable_params = layers * shape.layer_params
        # a trained weight in its own dtype, its gradient, the optimizer's slots
        per_param = 2.0 * (2 + slots)
        if shape.quantized:
            per_param += 2.0  # the layer is trained dequantized
    else:
        trainable_params = layers * shape.lora_params(config.rank)
        if config.method == "dora":
            trainable_params += layers * 7 * shape.hidden  # a magnitude per output row
        per_param = 4.0 * (2 + slots)
    trainable = int(trainable_params * per_param)
    tokens = config.batch_size * config.max_seq_length
    act_dtype = 2 if shape.dtype_bytes < 4 else 4
    per_token_layer = act_dtype * (10 * shape.hidden + 3 * shape.intermediate
                                   + 2 * shape.n_heads * shape.head_dim)
    scores = act_dtype * config.batch_size * shape.n_heads * config.max_seq_length ** 2
    if config.grad_checkpoint:
        activations = tokens * act_dtype * shape.hidden * layers \
            + tokens * per_token_layer + scores
    else:
        activations = layers * (tokens * per_token_layer + scores)
    logits = 3 * 4 * tokens * shape.vocab
    return MemoryEstimate(weights, trainable, int(activations), logits, trainable_params)


@dataclass(frozen=True)
class FitVerdict:
    fits: bool
    message: str


def fit_verdict(estimate_: MemoryEstimate, available: int) -> FitVerdict:
    """Whether the estimate fits in `available` bytes of memory, in one line."""
    need = estimate_.total
    if need <= 0.8 * available:
        return FitVerdict(True, f"Needs {estimate_.describe()}; fits in "
                                f"{human_size(available)}.")
    if need <= available:
        return FitVerdict(True, f"Needs {estimate_.describe()}: tight in "
                                f"{human_size(available)}; close other apps.")
    return FitVerdict(False, f"Needs {estimate_.describe()}, more than the "
                             f"{human_size(available)} available: lower the batch size or "
                             "sequence length, train fewer layers, use gradient "
                             "checkpointing or QLoRA.")
