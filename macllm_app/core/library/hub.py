"""Hugging Face Hub: search, repo view (files, sizes, quant types). huggingface_hub loads lazily.

The endpoint is read from HF_ENDPOINT at call time (huggingface_hub itself
reads it once at import) and passed explicitly to every call.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from macllm_app.core.errors import UserError

if TYPE_CHECKING:
    from huggingface_hub import HfApi

DEFAULT_ENDPOINT = "https://huggingface.co"
_QUANT = re.compile(
    r"(?<![A-Za-z0-9])(I?Q\d(?:_[A-Z0-9]+)*|T?Q\d_\d|BF16|F16|F32|MXFP4)(?![A-Za-z0-9])",
    re.IGNORECASE)
_MLX_BITS = re.compile(r"(?<![A-Za-z0-9])(\d{1,2})-?bits?(?![A-Za-z0-9])", re.IGNORECASE)
_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}")
T = TypeVar("T")


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/")


def check_repo_id(repo_id: str) -> str:
    if not _REPO_ID.fullmatch(repo_id) or ".." in repo_id:
        raise UserError(f"{repo_id!r} is not a Hugging Face repo id (like org/name).")
    return repo_id


def quant_from_name(name: str) -> str | None:
    """'SmolLM2-135M-Instruct-Q4_K_M.gguf' -> 'Q4_K_M'; 'Llama-3-8B-4bit' -> '4-bit'."""
    stem = name.rsplit("/", 1)[-1].removesuffix(".gguf")
    m = _QUANT.search(stem)
    if m:
        return m.group(1).upper()
    m = _MLX_BITS.search(stem)
    return f"{m.group(1)}-bit" if m else None


@dataclass(frozen=True, slots=True)
class HubModel:
    id: str
    downloads: int
    likes: int
    tags: tuple[str, ...]
    library: str | None
    formats: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "tags": list(self.tags), "formats": list(self.formats)}


@dataclass(frozen=True, slots=True)
class HubFile:
    name: str
    size: int | None
    sha256: str | None  # LFS files
    git_oid: str | None  # small files: the git blob id
    quant: str | None

    @property
    def is_gguf(self) -> bool:
        return self.name.lower().endswith(".gguf")


@dataclass(frozen=True, slots=True)
class RepoView:
    id: str
    revision: str
    commit: str | None
    files: tuple[HubFile, ...]
    quant: str | None

    @property
    def gguf_files(self) -> list[HubFile]:
        return [f for f in self.files if f.is_gguf]

    @property
    def is_mlx(self) -> bool:
        names = {f.name for f in self.files}
        return "config.json" in names and any(n.endswith(".safetensors") for n in names)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "revision": self.revision, "commit": self.commit,
                "quant": self.quant, "is_mlx": self.is_mlx,
                "files": [asdict(f) for f in self.files]}


def api() -> HfApi:
    from huggingface_hub import HfApi

    from macllm_app.core.library.token import get_token

    return HfApi(endpoint=endpoint(), token=get_token() or False,
                 library_name="macllm", library_version="0.1")


@contextmanager
def hub_errors(what: str) -> Iterator[None]:
    """Turn the Hub client's network/HTTP failures into one-line UserErrors."""
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    try:
        yield
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        raise UserError(f"Hugging Face Hub: {what} failed (HTTP {status}).") from exc
    except httpx2.HTTPError as exc:
        raise UserError(f"Hugging Face Hub: {what} failed ({type(exc).__name__}: {exc}).") from exc


def _call(what: str, fn: Callable[[], T]) -> T:
    with hub_errors(what):
        return fn()
    raise AssertionError("unreachable")  # pragma: no cover (mypy: the context may swallow)


def search_models(query: str, fmt: str | None = None, limit: int = 20) -> list[HubModel]:
    """Search by text; fmt "gguf" or "mlx" filters by library; most downloaded first."""
    if fmt not in (None, "gguf", "mlx"):
        raise UserError(f"Unknown format filter {fmt!r} (use gguf or mlx).")
    hf = api()

    def run() -> list[HubModel]:
        found = hf.list_models(search=query or None, filter=fmt, sort="downloads",
                               limit=max(1, min(limit, 100)))
        out = []
        for m in found:
            tags = tuple(m.tags or ())
            formats = tuple(f for f in ("gguf", "mlx") if f in tags or m.library_name == f)
            out.append(HubModel(m.id, int(m.downloads or 0), int(m.likes or 0), tags,
                                m.library_name, formats))
        return sorted(out, key=lambda r: -r.downloads)

    return _call(f"search for {query!r}", run)


def repo_view(repo_id: str, revision: str = "main") -> RepoView:
    check_repo_id(repo_id)
    hf = api()
    info = _call(f"listing {repo_id}",
                 lambda: hf.model_info(repo_id, revision=revision, files_metadata=True,
                                       timeout=30))
    files = []
    for s in info.siblings or ():
        lfs = s.lfs
        files.append(HubFile(
            name=s.rfilename,
            size=s.size if s.size is not None else (lfs.size if lfs else None),
            sha256=lfs.sha256 if lfs else None,
            git_oid=s.blob_id if not lfs else None,
            quant=quant_from_name(s.rfilename) if s.rfilename.endswith(".gguf") else None))
    return RepoView(repo_id, revision, info.sha, tuple(files), quant_from_name(repo_id))
