"""resources/ read as package data, the icons rendered from their vector source, and
the frozen bundle's self-check naming what it lacks."""

from __future__ import annotations

import json
import plistlib
import subprocess
import sys
from pathlib import Path

import pytest

from macllm_app.core import resources
from macllm_app.core.bundle_check import REQUIRED, missing_parts

ROOT = Path(__file__).resolve().parents[2]


def test_every_declared_resource_is_readable() -> None:
    names = [resources.APP_ICON, resources.INFO_PLIST_FRAGMENT, resources.CALIBRATION_TEXT,
             resources.EVALUATION_TEXT, resources.DEFAULT_SYSTEM_PROMPT,
             *resources.EXAMPLE_DATASETS]
    for name in names:
        assert resources.read_text(name).strip(), name
    with pytest.raises(FileNotFoundError, match=r"resource nope\.txt is missing"):
        resources.resource("nope.txt")


def test_texts_and_datasets_carry_their_source_and_licence() -> None:
    for folder in ("texts", "datasets", "prompts"):
        readme = (ROOT / "resources" / folder / "README.md").read_text()
        assert "CC0" in readme and "written for MacLLM" in readme
    assert len(resources.read_text(resources.EVALUATION_TEXT)) > 4 * 2048  # several chunks
    for name in resources.EXAMPLE_DATASETS:
        records = [json.loads(line) for line in resources.read_text(name).splitlines()]
        assert len(records) >= 10
        assert all(("prompt" in r and "response" in r) or "messages" in r for r in records)


def test_new_chats_start_with_the_shipped_system_prompt() -> None:
    from macllm_app.core.settings import Settings

    assert Settings().chat.system_prompt == resources.default_system_prompt()


def test_the_info_plist_fragment_declares_gguf_files_and_folders() -> None:
    plist = plistlib.loads(resources.read_text(resources.INFO_PLIST_FRAGMENT).encode())
    assert plist["NSHighResolutionCapable"] is True and plist["LSMinimumSystemVersion"]
    exported = plist["UTExportedTypeDeclarations"][0]
    assert exported["UTTypeTagSpecification"]["public.filename-extension"] == ["gguf"]
    kinds = [t["LSItemContentTypes"][0] for t in plist["CFBundleDocumentTypes"]]
    assert kinds == [exported["UTTypeIdentifier"], "public.folder"]


def test_the_icons_are_rendered_from_the_svg(tmp_path: Path) -> None:
    from PySide6.QtGui import QImage, QImageReader

    result = subprocess.run([sys.executable, str(ROOT / "packaging" / "make_icons.py"),
                             str(tmp_path)], capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr
    for size in (16, 256, 1024):
        image = QImage(str(tmp_path / f"macllm-{size}.png"))
        assert (image.width(), image.height()) == (size, size)
        assert image.pixelColor(size // 2, size // 8).blue() > 200  # the blue square
    icns = tmp_path / "MacLLM.icns"
    assert icns.read_bytes()[:4] == b"icns"
    reader = QImageReader(str(icns))
    assert reader.format() == b"icns" and reader.imageCount() >= 7


def _whole_bundle(root: Path, platform: str) -> Path:
    for wanted, pattern, _what in REQUIRED:
        if wanted in ("", platform):
            path = root / pattern.replace("*", "SmolLM2")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")
    return root


@pytest.mark.parametrize("platform", ["linux", "darwin"])
def test_a_whole_bundle_passes_and_a_missing_part_is_named(tmp_path: Path,
                                                           platform: str) -> None:
    root = _whole_bundle(tmp_path / platform, platform)
    assert missing_parts(root, platform) == []
    library = "libllama.so" if platform == "linux" else "libllama.dylib"
    (root / "llama_cpp" / "lib" / library).unlink()
    assert missing_parts(root, platform) == [
        f"llama.cpp's library is missing (llama_cpp/lib/{library})"]
    if platform == "darwin":
        (root / "mlx" / "lib" / "mlx.metallib").unlink()
        assert missing_parts(root, platform)[-1] == (
            "MLX's Metal kernels (mlx.metallib beside libmlx) is missing (mlx/lib/mlx.metallib)")


def test_running_from_source_is_not_a_bundle() -> None:
    from macllm_app.core.bundle_check import bundle_root

    assert bundle_root() is None
