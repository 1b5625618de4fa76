"""The files in `resources/` (the package `macllm_app.resources`): icons, the Info.plist
fragment, calibration and evaluation texts, example datasets, default prompts.

Read through importlib.resources, so the same code works in a checkout, an
installed wheel and a frozen bundle.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable

PACKAGE = "macllm_app.resources"
APP_ICON = "icon/macllm.svg"
INFO_PLIST_FRAGMENT = "Info.plist.fragment.xml"
CALIBRATION_TEXT = "texts/calibration.txt"
EVALUATION_TEXT = "texts/evaluation.txt"
EXAMPLE_DATASETS = ("datasets/example-prompt-response.jsonl", "datasets/example-chat.jsonl")
DEFAULT_SYSTEM_PROMPT = "prompts/default_system_prompt.txt"


def resource(name: str) -> Traversable:
    """A resource by its path inside `resources/` ("texts/calibration.txt")."""
    found = resources.files(PACKAGE).joinpath(name)
    if not found.is_file():
        raise FileNotFoundError(f"MacLLM's resource {name} is missing from this build")
    return found


def read_text(name: str) -> str:
    return resource(name).read_text(encoding="utf-8")


def default_system_prompt() -> str:
    return read_text(DEFAULT_SYSTEM_PROMPT).strip()
