"""GGUF tensor data to MLX arrays, for files `mx.load` cannot read whole.

Q4_0, Q4_1 and Q8_0 blocks are repacked, bit for bit, into MLX's affine
quantized layout (group size 32): the same arrays `mx.load` produces. Every
other type the `gguf` package can decode (K-quants, Q5_0, IQ types, BF16) is
dequantized; it is kept as float16, or float32 where float16 would overflow,
or bfloat16 for BF16.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from macllm_app.core.errors import ModelFileError

GROUP_SIZE = 32
#: GGUF types repacked exactly into MLX quantized arrays: type -> bits.
REPACKED_BITS = {"Q4_0": 4, "Q4_1": 4, "Q8_0": 8}
#: Block layout: (bytes per block, offset of the quants).
_BLOCKS = {"Q4_0": (18, 2), "Q4_1": (20, 4), "Q8_0": (34, 2)}
FLOAT_TYPES = frozenset({"F32", "F16"})
_F16_MAX = float(np.finfo(np.float16).max)


def repack(data: np.ndarray, type_name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(weight uint32, scales float16, biases float16) from raw GGUF blocks.

    `data` is uint8 of shape (rows, bytes per row), as `gguf.GGUFReader` gives it.
    """
    block_bytes, quant_offset = _BLOCKS[type_name]
    rows = data.shape[0]
    blocks = np.ascontiguousarray(data).reshape(rows, -1, block_bytes)
    scales = blocks[..., 0:2].copy().view(np.float16)[..., 0]
    quants = blocks[..., quant_offset:]
    if type_name == "Q8_0":
        values = (quants.view(np.int8).astype(np.int16) + 128).astype(np.uint8)
        biases = scales * np.float16(-128)
        packed = np.ascontiguousarray(values).reshape(rows, -1)
    else:
        # A Q4 block keeps element j in the low nibble of byte j and element j + 16
        # in the high nibble; MLX wants elements in order, two per byte, low first.
        values = np.concatenate([quants & 0x0F, quants >> 4], axis=-1).reshape(rows, -1)
        packed = (values[:, 0::2] | (values[:, 1::2] << 4)).astype(np.uint8)
        if type_name == "Q4_1":
            biases = blocks[..., 2:4].copy().view(np.float16)[..., 0]
        else:
            biases = scales * np.float16(-8)
    weight = np.ascontiguousarray(packed).view("<u4")
    return weight, np.ascontiguousarray(scales), np.ascontiguousarray(biases)


def dequantize(data: np.ndarray, type_name: str, tensor: str, label: str) -> Any:
    """An `mx.array` with the decoded values of a tensor in any type gguf decodes."""
    import mlx.core as mx
    from gguf import GGMLQuantizationType, quants

    if type_name in FLOAT_TYPES:
        return mx.array(np.asarray(data))
    try:
        values = quants.dequantize(np.asarray(data), GGMLQuantizationType[type_name])
    except (KeyError, NotImplementedError, ValueError) as exc:
        raise ModelFileError(
            f"{label}: tensor {tensor!r} has type {type_name}, which cannot be converted "
            f"({exc or 'not supported'})") from None
    values = np.asarray(values, dtype=np.float32)
    if type_name == "BF16":
        return mx.array(values).astype(mx.bfloat16)
    if not np.isfinite(values).all():
        raise ModelFileError(f"{label}: tensor {tensor!r} holds values that are not finite")
    if np.abs(values).max(initial=0.0) > _F16_MAX:
        return mx.array(values)
    return mx.array(values.astype(np.float16))
