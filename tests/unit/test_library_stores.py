"""Indexing other apps' stores in place: Hugging Face cache, LM Studio, Ollama."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from macllm_app.core.engines.select import installed
from macllm_app.core.library import commands
from macllm_app.core.library.catalogue import Catalogue
from macllm_app.core.library.stores import refresh_store_index
from tests.support.gguf_writer import TinyGGUF
from tests.support.mlx_fixtures import make_mlx_folder


@pytest.fixture
def stores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    roots = {name: tmp_path / name for name in ("hf", "lms1", "lms2", "ollama")}
    monkeypatch.setenv("HF_HUB_CACHE", str(roots["hf"]))
    monkeypatch.setenv("MACLLM_LMSTUDIO_DIRS", f"{roots['lms1']}:{roots['lms2']}")
    monkeypatch.setenv("MACLLM_OLLAMA_DIR", str(roots["ollama"]))
    return roots


def _hf_repo(root: Path, repo_id: str, files: dict[str, bytes | Path]) -> Path:
    """Lay out a repo the way huggingface_hub does: blobs + snapshot symlinks + refs/main."""
    repo = root / ("models--" + repo_id.replace("/", "--"))
    rev = "a" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(rev)
    for name, content in files.items():
        data = content.read_bytes() if isinstance(content, Path) else content
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = repo / "snapshots" / rev / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(Path("../" * (name.count("/") + 2)) / "blobs" / blob.name)
    return repo


def test_indexes_all_three_stores(stores: dict[str, Path], tmp_path: Path) -> None:
    tiny = TinyGGUF.llama().write(tmp_path / "src" / "tiny.gguf")
    mlx = make_mlx_folder(tmp_path / "src" / "mlx")
    _hf_repo(stores["hf"], "someone/Tiny-GGUF", {"tiny-Q4_0.gguf": tiny})
    _hf_repo(stores["hf"], "mlx-community/Tiny-4bit",
             {f.name: f for f in mlx.iterdir()})
    TinyGGUF.llama(name="LMS").write(stores["lms1"] / "pub" / "repo" / "lms-Q4_0.gguf")
    make_mlx_folder(stores["lms2"] / "pub" / "mlx-repo")
    (stores["lms1"] / "pub" / "repo" / "broken.gguf").write_bytes(b"GGUF\x03\0\0\0")
    blob_data = tiny.read_bytes()
    digest = hashlib.sha256(blob_data).hexdigest()
    (stores["ollama"] / "blobs").mkdir(parents=True)
    (stores["ollama"] / "blobs" / f"sha256-{digest}").write_bytes(blob_data)
    manifest = stores["ollama"] / "manifests" / "registry.ollama.ai" / "library" / "tiny" / "latest"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps({"layers": [
        {"mediaType": "application/vnd.ollama.image.template", "digest": "sha256:" + "0" * 64},
        {"mediaType": "application/vnd.ollama.image.model", "digest": f"sha256:{digest}"},
    ]}))

    scan = refresh_store_index()
    by_source: dict[str, list[str]] = {}
    for e in scan.added:
        by_source.setdefault(e.source, []).append(e.name)
    assert sorted(by_source["hf-cache"]) == ["mlx-community/Tiny-4bit",
                                             "someone/Tiny-GGUF/tiny-Q4_0.gguf"]
    assert sorted(by_source["lmstudio"]) == ["pub/mlx-repo", "pub/repo/lms-Q4_0.gguf"]
    assert by_source["ollama"] == ["tiny:latest"]
    assert [Path(p).name for p, _ in scan.skipped] == ["broken.gguf"]
    listed = {m["name"]: m for m in commands.list_models()}
    assert listed["tiny:latest"]["format"] == "gguf"
    assert listed["mlx-community/Tiny-4bit"]["engines"] == installed(["mlx"])
    # in place: nothing copied into our models dir
    assert not any(Path(m["path"]).is_relative_to(stores["hf"].parent / "macllm-home")
                   for m in listed.values())
    # ids are stable across rescans; removed store models leave the index
    ids = {e.id for e in Catalogue().entries()}
    assert refresh_store_index().added == []
    assert {e.id for e in Catalogue().entries()} == ids
    manifest.unlink()
    assert [e.name for e in refresh_store_index().removed] == ["tiny:latest"]


def test_hf_symlink_leaving_repo_is_refused(stores: dict[str, Path], tmp_path: Path) -> None:
    mlx = make_mlx_folder(tmp_path / "src" / "mlx")
    repo = _hf_repo(stores["hf"], "evil/repo", {f.name: f for f in mlx.iterdir()})
    secret = tmp_path / "secret.txt"
    secret.write_text("x")
    (repo / "snapshots" / ("a" * 40) / "notes.txt").symlink_to(secret)
    scan = refresh_store_index()
    assert scan.added == []
    assert "outside the model folder" in scan.skipped[0][1]


def test_missing_stores_are_fine(stores: dict[str, Path]) -> None:
    assert refresh_store_index().added == []
