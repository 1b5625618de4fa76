"""Index models other apps keep on disk, in place: the Hugging Face cache, LM Studio, Ollama.

Locations follow each app's own conventions and environment variables;
`MACLLM_LMSTUDIO_DIRS` (os.pathsep-separated) and `MACLLM_OLLAMA_DIR`
override them for tests.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from macllm_app.core.errors import ModelFileError
from macllm_app.core.formats.inspect import inspect_model
from macllm_app.core.library.catalogue import STORE_SOURCES, Catalogue, LibraryEntry, Source

log = logging.getLogger("macllm.library.stores")

OLLAMA_MODEL_LAYER = "application/vnd.ollama.image.model"
_SHARD = re.compile(r"-(\d{5})-of-\d{5}\.gguf$")
_DIGEST = re.compile(r"sha256:([0-9a-f]{64})")
MAX_MANIFEST_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class StoreModel:
    source: Source
    path: Path
    name: str
    allowed_root: Path
    extra: dict[str, str] = field(default_factory=dict)


@dataclass
class StoreScan:
    added: list[LibraryEntry] = field(default_factory=list)
    removed: list[LibraryEntry] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


def hf_cache_dir() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    return Path.home() / ".cache" / "huggingface" / "hub"


def lmstudio_dirs() -> list[Path]:
    override = os.environ.get("MACLLM_LMSTUDIO_DIRS")
    if override is not None:
        return [Path(p) for p in override.split(os.pathsep) if p]
    return [Path.home() / ".lmstudio" / "models", Path.home() / ".cache" / "lm-studio" / "models"]


def ollama_dir() -> Path:
    override = os.environ.get("MACLLM_OLLAMA_DIR") or os.environ.get("OLLAMA_MODELS")
    return Path(override) if override else Path.home() / ".ollama" / "models"


def _is_first_shard_or_whole(path: Path) -> bool:
    m = _SHARD.search(path.name)
    return m is None or int(m.group(1)) == 1


def _model_dirs_and_ggufs(root: Path) -> tuple[list[Path], list[Path]]:
    """GGUF files and folders holding config.json + safetensors, under root."""
    ggufs: list[Path] = []
    folders: list[Path] = []
    for dirpath, _dirs, files in os.walk(root, followlinks=False):
        here = Path(dirpath)
        ggufs.extend(here / f for f in files
                     if f.endswith(".gguf") and _is_first_shard_or_whole(here / f))
        if "config.json" in files and any(f.endswith(".safetensors") for f in files):
            folders.append(here)
    return sorted(ggufs), sorted(folders)


def scan_hf_cache(root: Path) -> list[StoreModel]:
    found: list[StoreModel] = []
    if not root.is_dir():
        return found
    for repo in sorted(root.glob("models--*")):
        repo_id = repo.name.removeprefix("models--").replace("--", "/")
        snapshots = repo / "snapshots"
        ref = repo / "refs" / "main"
        revision = ref.read_text().strip() if ref.is_file() else ""
        snap = snapshots / revision if revision and (snapshots / revision).is_dir() else None
        if snap is None:
            candidates = sorted(snapshots.glob("*"), key=lambda p: p.stat().st_mtime)
            snap = candidates[-1] if candidates else None
        if snap is None or not snap.resolve().is_relative_to(repo.resolve()):
            continue
        extra = {"repo_id": repo_id, "revision": snap.name}
        ggufs, folders = _model_dirs_and_ggufs(snap)
        found.extend(StoreModel("hf-cache", g, f"{repo_id}/{g.name}", repo, extra) for g in ggufs)
        found.extend(StoreModel("hf-cache", f, repo_id, repo, extra) for f in folders)
    return found


def scan_lmstudio(roots: list[Path]) -> list[StoreModel]:
    found: list[StoreModel] = []
    for root in roots:
        if not root.is_dir():
            continue
        ggufs, folders = _model_dirs_and_ggufs(root)
        for p in [*ggufs, *folders]:
            rel = p.relative_to(root).as_posix()
            found.append(StoreModel("lmstudio", p, rel, p if p.is_dir() else p.parent))
    return found


def scan_ollama(root: Path) -> list[StoreModel]:
    found: list[StoreModel] = []
    manifests = root / "manifests"
    if not manifests.is_dir():
        return found
    for mf in sorted(p for p in manifests.rglob("*") if p.is_file()):
        parts = mf.relative_to(manifests).parts
        if len(parts) != 4:
            continue
        host, namespace, model, tag = parts
        try:
            if mf.stat().st_size > MAX_MANIFEST_BYTES:
                raise ValueError("manifest too large")
            layers = json.loads(mf.read_bytes()).get("layers", [])
            digest = next(layer["digest"] for layer in layers if isinstance(layer, dict)
                          and layer.get("mediaType") == OLLAMA_MODEL_LAYER)
        except (OSError, ValueError, AttributeError, KeyError, StopIteration, TypeError):
            log.info("skipping unreadable Ollama manifest %s", mf)
            continue
        m = _DIGEST.fullmatch(str(digest))
        if m is None:
            continue
        blob = root / "blobs" / f"sha256-{m.group(1)}"
        short = f"{model}:{tag}" if (host, namespace) == ("registry.ollama.ai", "library") \
            else f"{host}/{namespace}/{model}:{tag}"
        found.append(StoreModel("ollama", blob, short, root / "blobs",
                                {"ollama_name": short, "digest": str(digest)}))
    return found


def scan_stores() -> list[StoreModel]:
    return [*scan_hf_cache(hf_cache_dir()), *scan_lmstudio(lmstudio_dirs()),
            *scan_ollama(ollama_dir())]


def _stamp(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


def refresh_store_index(catalogue: Catalogue | None = None) -> StoreScan:
    """Validate every model found in the stores and sync the catalogue's store entries."""
    cat = catalogue or Catalogue()
    scan = StoreScan()
    known = {e.path: e for e in cat.entries()}
    present: set[str] = set()
    for model in scan_stores():
        key = str(model.path)
        try:
            stamp = _stamp(model.path)
            old = known.get(key)
            if old is not None and old.extra.get("stamp") == stamp:
                present.add(key)
                continue
            meta = inspect_model(model.path, model.allowed_root)
        except (ModelFileError, OSError) as exc:
            scan.skipped.append((key, str(exc)))
            continue
        present.add(key)
        entry = cat.add(meta, model.path, model.source, {**model.extra, "stamp": stamp},
                        name=model.name)
        if old is None:
            scan.added.append(entry)
    scan.removed = cat.remove_where(lambda e: e.source not in STORE_SOURCES or e.path in present)
    return scan
