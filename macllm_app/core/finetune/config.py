"""What a fine-tuning run is told to do: the method and its parameters, with presets.

The names follow mlx-lm's `lora` command (`fine_tune_type`, `num_layers`,
`lora_parameters`, `lr_schedule`), so a run's `adapter_config.json` reads as
mlx-lm's own and `mlx_lm.load(..., adapter_path=...)` loads it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal, get_args

from macllm_app.core.errors import UserError

Method = Literal["lora", "dora", "qlora", "full"]
Optimizer = Literal["adam", "adamw", "sgd", "adafactor"]
METHODS: tuple[Method, ...] = get_args(Method)
OPTIMIZERS: tuple[Optimizer, ...] = get_args(Optimizer)
METHOD_LABELS: dict[Method, str] = {
    "lora": "LoRA", "dora": "DoRA", "qlora": "QLoRA (4-bit base)", "full": "Full fine-tune"}
#: QLoRA's base: a model not already quantized is quantized in memory this way.
QLORA_BITS, QLORA_GROUP_SIZE = 4, 64


class ConfigError(UserError):
    """A training parameter out of range."""


@dataclass(frozen=True)
class TrainConfig:
    """One run's parameters. `num_layers` counts from the last layer (-1: all);
    `epochs`, when set, decides the iterations from the training set's size."""

    method: Method = "lora"
    rank: int = 8
    scale: float = 20.0
    dropout: float = 0.0
    num_layers: int = 16
    learning_rate: float = 1e-5
    warmup_steps: int = 0
    cosine_decay: bool = False
    min_learning_rate: float = 0.0
    optimizer: Optimizer = "adam"
    batch_size: int = 4
    grad_accumulation: int = 1
    iters: int = 100
    epochs: float | None = None
    max_seq_length: int = 2048
    grad_checkpoint: bool = False
    mask_prompt: bool = False
    seed: int = 0
    steps_per_eval: int = 50
    val_batches: int = 25
    save_every: int = 50
    #: MLX's allocator cache is cleared when it grows past this (bytes; 0: MLX's own rule).
    cache_limit_bytes: int = 2 * 1024**3

    def check(self) -> None:
        """Raise ConfigError naming the first parameter out of range."""
        rules: list[tuple[bool, str]] = [
            (self.method in METHODS, f"method must be one of {', '.join(METHODS)}"),
            (self.optimizer in OPTIMIZERS,
             f"optimizer must be one of {', '.join(OPTIMIZERS)}"),
            (1 <= self.rank <= 1024, "rank must be between 1 and 1024"),
            (math.isfinite(self.scale) and self.scale > 0, "scale must be a positive number"),
            (0.0 <= self.dropout < 1.0, "dropout must be at least 0 and below 1"),
            (self.num_layers == -1 or self.num_layers >= 1,
             "layers must be at least 1 (or -1 for all)"),
            (math.isfinite(self.learning_rate) and 0 < self.learning_rate <= 1,
             "learning rate must be above 0 and at most 1"),
            (self.warmup_steps >= 0, "warm-up steps cannot be negative"),
            (0 <= self.min_learning_rate <= self.learning_rate,
             "the final learning rate must be between 0 and the learning rate"),
            (self.batch_size >= 1, "batch size must be at least 1"),
            (self.grad_accumulation >= 1, "gradient accumulation must be at least 1"),
            (self.iters >= 1, "iterations must be at least 1"),
            (self.epochs is None or self.epochs > 0, "epochs must be above 0"),
            (16 <= self.max_seq_length <= 131072,
             "maximum sequence length must be between 16 and 131072"),
            (self.steps_per_eval >= 1, "steps between validations must be at least 1"),
            (self.val_batches == -1 or self.val_batches >= 1,
             "validation batches must be at least 1 (or -1 for all)"),
            (self.save_every >= 1, "steps between checkpoints must be at least 1"),
            (self.cache_limit_bytes >= 0, "the cache limit cannot be negative"),
        ]
        for ok, message in rules:
            if not ok:
                raise ConfigError(f"Fine-tune settings: {message}.")
        if self.warmup_steps >= self.iters and self.epochs is None:
            raise ConfigError("Fine-tune settings: warm-up must be shorter than the run "
                              f"({self.warmup_steps} of {self.iters} iterations).")

    def total_iters(self, n_train: int) -> int:
        """The run's iterations: `iters`, or `epochs` passes over `n_train` records."""
        if self.epochs is None:
            return self.iters
        per_epoch = max(1, n_train // self.batch_size)
        return max(1, math.ceil(self.epochs * per_epoch))

    def layers_for(self, n_layers: int) -> int:
        """The number of layers trained in a model of `n_layers` layers."""
        if self.num_layers == -1:
            return n_layers
        if self.num_layers > n_layers:
            raise ConfigError(f"Fine-tune settings: {self.num_layers} layers asked for, but "
                              f"the model has {n_layers}.")
        return self.num_layers

    def lora_parameters(self) -> dict[str, float]:
        return {"rank": self.rank, "scale": self.scale, "dropout": self.dropout}

    def lr_schedule(self, total_iters: int) -> dict[str, Any] | None:
        """mlx-lm's `lr_schedule` (for `build_schedule`), or None for a constant rate."""
        if not self.cosine_decay and not self.warmup_steps:
            return None
        decay_steps = max(1, total_iters - self.warmup_steps)
        if self.cosine_decay:
            schedule: dict[str, Any] = {
                "name": "cosine_decay",
                "arguments": [self.learning_rate, decay_steps, self.min_learning_rate]}
        else:
            schedule = {"name": "linear_schedule",
                        "arguments": [self.learning_rate, self.learning_rate, decay_steps]}
        if self.warmup_steps:
            schedule["warmup"] = self.warmup_steps
        return schedule

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        return cls(**known)


#: Starting points for the pane, by name (each is a complete configuration).
PRESETS: dict[str, TrainConfig] = {
    "Quick try": TrainConfig(rank=8, num_layers=8, learning_rate=1e-4, iters=100,
                             batch_size=4, max_seq_length=512, mask_prompt=True,
                             save_every=25, steps_per_eval=25),
    "Balanced": TrainConfig(rank=16, num_layers=16, learning_rate=5e-5, iters=600,
                            warmup_steps=30, cosine_decay=True, batch_size=4,
                            max_seq_length=1024, mask_prompt=True, save_every=100,
                            steps_per_eval=100),
    "Thorough": TrainConfig(rank=32, num_layers=-1, learning_rate=2e-5, iters=2000,
                            warmup_steps=100, cosine_decay=True, batch_size=8,
                            grad_accumulation=2, max_seq_length=2048, mask_prompt=True,
                            grad_checkpoint=True, save_every=200, steps_per_eval=200),
}


def with_method(config: TrainConfig, method: Method) -> TrainConfig:
    """`config` for another method (full fine-tuning takes a smaller learning rate)."""
    if method == "full" and config.method != "full":
        return replace(config, method=method, learning_rate=min(config.learning_rate, 1e-5))
    return replace(config, method=method)
