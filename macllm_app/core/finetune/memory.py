"""How much memory a fine-tuning run will take at its peak, before it starts.

The seed's table (LoRA on a 7B model in 4 bits: ~6 GB; full fine-tuning in
16 bits: ~4x the weights) as a formula over the model's shapes:

    weights      the base as loaded (QLoRA: 4-bit, groups of 64; a full fine-tune
                 of a quantized base: all of it dequantized to float32, as
                 `train.py` trains it)
    trainable    parameters trained, with their gradients and the optimizer's
                 state (Adam: two moments; SGD: none): float32 for adapters, the
                 weights' own dtype for a full fine-tune
    activations  what backpropagation keeps per token for each trained layer
                 (inputs of every matrix product, the MLP's wide middle) or, with
                 gradient checkpointing, each layer's input and one layer's
                 working set; and the attention scores (batch x heads x length^2):
                 one copy per trained layer plus two for the backward pass's
                 working set (four in all with checkpointing)
    logits       the output layer's logits: mlx-lm's loss casts them to float32,
                 and the loss, its softmax and their gradients keep about five
                 float32 copies
    fixed        the process: Python, mlx, mlx-lm, the tokenizer (RSS minus
                 mlx's own peak measured 105-145 MiB)

Checked against measured runs on Linux x86_64 (mlx 0.32 CPU, mlx-lm 0.32), the
peak being the larger of mlx's peak and the process RSS, as `train.py` records
it (`tests/integration/test_finetune_results.py` asserts 0.5x-2x on its own runs);
the last column is what the constants before this check said:

    run: model, method, layers trained, batch x length  measured  estimate  before
    tiny llama f32, LoRA, 2 of 2, 2 x 96                  108 MiB   154 MiB   202
    tiny llama f32, LoRA, 2 of 2, 8 x 512                 319 MiB   335 MiB   263
    tiny llama f32, LoRA, 2 of 2, 2 x 2048                708 MiB   719 MiB   359
    tiny llama f32, LoRA, 2 of 2, 2 x 2048, checkpointed  706 MiB   703 MiB   287
    tiny llama 4-bit, full, 1 of 2, 2 x 96                107 MiB   153 MiB   202
    SmolLM2-135M (4-bit MLX copy), LoRA, 4, 1 x 32        281 MiB   275 MiB   313
    SmolLM2-135M (4-bit MLX copy), LoRA, 4, 2 x 256       782 MiB   781 MiB   634
    SmolLM2-135M (4-bit MLX copy), full, 2, 1 x 32        832 MiB   885 MiB   374

The attention and logits terms were fitted on mlx's own peak in those runs; the
process term on RSS minus that peak. A tiny model's run is nearly all process,
hence its 1.4x.
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
#: The process (Python, mlx, mlx-lm, the tokenizer) and allocator slack, on top of the arrays.
_FIXED_BYTES = 150 * 1024**2
#: Copies of one layer's attention scores the backward pass holds besides the trained
#: layers' own (`_CHECKPOINTED_SCORES` in all with gradient checkpointing).
_BACKWARD_SCORES, _CHECKPOINTED_SCORES = 2, 4
#: float32 copies of the logits the loss and its gradient hold.
_LOGITS_COPIES = 5


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
        dtype = str(config.get("torch_dtype") or config.get("dtype") or _weights_dtype(folder))
        dtype_bytes = 4.0 if dtype == "float32" else 2.0
    return ModelShape(
        n_layers=int(config["num_hidden_layers"]), hidden=hidden,
        intermediate=int(config["intermediate_size"]), n_heads=heads,
        n_kv_heads=int(config.get("num_key_value_heads") or heads),
        head_dim=int(config.get("head_dim") or hidden // heads),
        vocab=int(config["vocab_size"]), dtype_bytes=dtype_bytes, quantized=bool(quant))


def _weights_dtype(folder: Path) -> str:
    """The floating-point dtype most of the weights are stored in (for a config.json that
    names none, as mlx-lm's own saves may): "float32" or "float16"."""
    from macllm_app.core.errors import ModelFileError
    from macllm_app.core.formats.safetensors_header import read_safetensors_header

    counts: dict[str, int] = {}
    for path in sorted(folder.glob("*.safetensors"))[:1]:
        try:
            tensors, _meta = read_safetensors_header(path)
        except ModelFileError:
            break
        for tensor in tensors:
            counts[tensor.dtype] = counts.get(tensor.dtype, 0) + 1
    floats = {k: v for k, v in counts.items() if k in ("F32", "F16", "BF16")}
    return "float32" if floats and max(floats, key=lambda k: floats[k]) == "F32" else "float16"


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
    slots = _OPTIMIZER_SLOTS[config.optimizer]
    weight_bytes = shape.dtype_bytes
    if config.method == "full":
        if shape.quantized:
            weight_bytes = 4.0  # train.py dequantizes the whole model to float32
        trainable_params = layers * shape.layer_params
        # each trained weight's gradient and the optimizer's slots, in the weights' dtype
        # (the weight itself is in `weights`)
        per_param = weight_bytes * (1 + slots)
    else:
        if config.method == "qlora" and not shape.quantized:
            weight_bytes = (QLORA_BITS + 32 / QLORA_GROUP_SIZE) / 8
        trainable_params = layers * shape.lora_params(config.rank)
        if config.method == "dora":
            trainable_params += layers * 7 * shape.hidden  # a magnitude per output row
        per_param = 4.0 * (2 + slots)
    weights = int(shape.n_params * weight_bytes)
    trainable = int(trainable_params * per_param)
    tokens = config.batch_size * config.max_seq_length
    act_dtype = 4 if max(weight_bytes, shape.dtype_bytes) >= 4 else 2
    per_token_layer = act_dtype * (10 * shape.hidden + 3 * shape.intermediate
                                   + 2 * shape.n_heads * shape.head_dim)
    scores = act_dtype * config.batch_size * shape.n_heads * config.max_seq_length ** 2
    if config.grad_checkpoint:
        activations = tokens * act_dtype * shape.hidden * layers \
            + tokens * per_token_layer + _CHECKPOINTED_SCORES * scores
    else:
        activations = layers * tokens * per_token_layer + (layers + _BACKWARD_SCORES) * scores
    logits = _LOGITS_COPIES * 4 * tokens * shape.vocab
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
