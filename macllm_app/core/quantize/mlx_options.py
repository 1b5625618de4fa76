"""What MLX quantization offers (mlx-lm's choices), importable without loading MLX."""

BITS = (2, 3, 4, 5, 6, 8)
GROUP_SIZES = (32, 64, 128)
MODES = ("affine", "mxfp4", "nvfp4", "mxfp8")
#: The microscaling modes' fixed (bits, group size).
MODE_LAYOUT = {"mxfp4": (4, 32), "nvfp4": (4, 16), "mxfp8": (8, 32)}
RECIPES = ("mixed_2_6", "mixed_3_4", "mixed_3_6", "mixed_4_6")
