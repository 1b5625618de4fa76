"""What MLX quantization offers (mlx-lm's choices), importable without loading MLX."""

from macllm_app.core.formats.metadata import ModelMetadata

BITS = (2, 3, 4, 5, 6, 8)
GROUP_SIZES = (32, 64, 128)
MODES = ("affine", "mxfp4", "nvfp4", "mxfp8")
#: The microscaling modes' fixed (bits, group size).
MODE_LAYOUT = {"mxfp4": (4, 32), "nvfp4": (4, 16), "mxfp8": (8, 32)}
RECIPES = ("mixed_2_6", "mixed_3_4", "mixed_3_6", "mixed_4_6")
FLOAT_GGUF = ("F32", "F16", "BF16")


def float_kind(meta: ModelMetadata) -> str:
    """F32, F16 or BF16: the source's weights, in which MLX keeps scales and biases."""
    if meta.format == "gguf":
        return meta.quantization
    floats = {k: n for k, n in meta.tensor_types.items() if k in FLOAT_GGUF}
    return max(floats, key=lambda k: floats[k]) if floats else "F16"


def float_bits(meta: ModelMetadata) -> int:
    return 32 if float_kind(meta) == "F32" else 16
