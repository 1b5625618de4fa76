"""Resumable, cancellable, verified downloads of one Hub file.

Why not `hf_hub_download`: it writes to a process-unique temp name that it
deletes on failure, so a partial file never survives an app restart, and it
has no cancel hook. We still use huggingface_hub for everything but the body:
the URL, auth headers, the HEAD that resolves the Hub's redirects and linked
ETag/size, and its shared HTTP session for the ranged GET.

The partial file is `<name>.part`, with `<name>.part.json` recording which
remote object (ETag, size, sha256) it belongs to; a restart resumes it with a
Range request when the remote object is unchanged.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from macllm_app.core.errors import Cancelled, UserError
from macllm_app.core.types import StopCheck

CHUNK = 1 << 20
FREE_MARGIN = 256 << 20
MAX_RETRIES = 5
REPORT_EVERY_S = 0.1


class DownloadError(UserError):
    """A download failed (network, disk, verification)."""


@dataclass(frozen=True, slots=True)
class DownloadProgress:
    file: str
    done: int
    total: int | None
    speed_bps: float
    eta_s: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


ProgressFn = Callable[[DownloadProgress], None]


def safe_relative_path(name: str) -> PurePosixPath:
    """A repo file name as a safe relative path; refuse traversal and odd names."""
    bad = (not name or "\\" in name or "\0" in name or name.startswith("/")
           or (len(name) > 1 and name[1] == ":"))
    parts = name.split("/")
    if bad or any(p in ("", ".", "..") or len(p) > 255 for p in parts):
        raise DownloadError(f"Refusing a file with an unsafe name: {name!r}")
    return PurePosixPath(*parts)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname or "", parts.port


def _verify(path: Path, sha256: str | None, git_oid: str | None, digest: str) -> bool:
    if sha256:
        return digest == sha256.lower()
    if git_oid:
        h = hashlib.sha1(usedforsecurity=False)
        h.update(f"blob {path.stat().st_size}\0".encode())
        with path.open("rb") as f:
            while block := f.read(CHUNK):
                h.update(block)
        return h.hexdigest() == git_oid.lower()
    return True


class Downloader:
    """Download `filename` from `repo_id` to `dest`; call `run()` (blocking: run it as a task)."""

    def __init__(self, repo_id: str, filename: str, dest: Path, *, revision: str = "main",
                 sha256: str | None = None, git_oid: str | None = None,
                 on_progress: ProgressFn | None = None,
                 should_stop: StopCheck | None = None) -> None:
        safe_relative_path(filename)
        self.repo_id, self.filename, self.revision = repo_id, filename, revision
        self.dest = dest
        self.sha256, self.git_oid = sha256, git_oid
        self.on_progress = on_progress
        self.should_stop = should_stop or (lambda: False)
        self.part = dest.with_name(dest.name + ".part")
        self._last_report = 0.0
        self.state = dest.with_name(dest.name + ".part.json")

    def discard(self) -> None:
        """Cancel for good: remove the partial download."""
        self.part.unlink(missing_ok=True)
        self.state.unlink(missing_ok=True)

    def run(self) -> Path:
        from macllm_app.core.library.hub import endpoint, hub_errors
        from macllm_app.core.library.token import get_token

        if self.dest.exists():
            return self.dest
        from huggingface_hub import get_hf_file_metadata, hf_hub_url
        from huggingface_hub.utils import build_hf_headers

        token = get_token() or False
        url = hf_hub_url(self.repo_id, self.filename, revision=self.revision, endpoint=endpoint())
        with hub_errors(f"looking up {self.filename}"):
            meta = get_hf_file_metadata(url, token=token, endpoint=endpoint(),
                                        retry_on_errors=True)
        remote = {"etag": meta.etag, "size": meta.size, "sha256": self.sha256,
                  "commit": meta.commit_hash}
        offset = self._resume_offset(remote)
        self._check_disk(meta.size, offset)
        headers = build_hf_headers(token=token, library_name="macllm")
        if _origin(meta.location) != _origin(endpoint()):
            headers.pop("authorization", None)  # never send the token to a CDN
        digest = self._fetch(meta.location, headers, offset, meta.size)
        if meta.size is not None and self.part.stat().st_size != meta.size:
            raise DownloadError(f"{self.filename}: download ended early; try again to resume.")
        if not _verify(self.part, self.sha256, self.git_oid, digest):
            self.discard()
            raise DownloadError(f"{self.filename}: the downloaded file failed its checksum "
                                "(corrupted in transit); it was removed, please retry.")
        self.part.replace(self.dest)
        self.state.unlink(missing_ok=True)
        return self.dest

    def _resume_offset(self, remote: dict[str, Any]) -> int:
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            saved = json.loads(self.state.read_text())
        except (OSError, ValueError):
            saved = None
        if saved == remote and self.part.is_file():
            have = self.part.stat().st_size
            if remote["size"] is None or have <= remote["size"]:
                return have
        self.part.write_bytes(b"")
        self.state.write_text(json.dumps(remote))
        return 0

    def _check_disk(self, size: int | None, offset: int) -> None:
        if size is None:
            return
        free = shutil.disk_usage(self.dest.parent).free
        if size - offset + FREE_MARGIN > free:
            raise DownloadError(f"Not enough disk space for {self.filename}: needs "
                                f"{(size - offset) >> 20} MB, {free >> 20} MB free.")

    def _fetch(self, url: str, headers: dict[str, str], offset: int, total: int | None) -> str:
        import httpx2
        from huggingface_hub.utils import get_session

        hasher = hashlib.sha256()
        with self.part.open("rb") as f:
            while block := f.read(CHUNK):
                hasher.update(block)
        started, start_bytes, retries = time.monotonic(), offset, 0
        while total is None or offset < total:
            req = {**headers, "Accept-Encoding": "identity"}
            if offset:
                req["Range"] = f"bytes={offset}-"
            try:
                with get_session().stream("GET", url, headers=req, follow_redirects=True,
                                          timeout=httpx2.Timeout(30.0, connect=10.0)) as resp:
                    if resp.status_code == 416 and total is not None and offset == total:
                        break
                    if resp.status_code not in (200, 206):
                        raise DownloadError(f"{self.filename}: server answered HTTP "
                                            f"{resp.status_code}.")
                    if resp.status_code == 200 and offset:  # Range ignored: start over
                        offset = start_bytes = 0
                        hasher = hashlib.sha256()
                        self.part.write_bytes(b"")
                    if resp.status_code == 206 and not resp.headers.get(
                            "Content-Range", "").startswith(f"bytes {offset}-"):
                        raise DownloadError(f"{self.filename}: server resumed at the wrong place.")
                    before = offset
                    with self.part.open("ab") as out:
                        for chunk in resp.iter_raw():
                            out.write(chunk)
                            hasher.update(chunk)
                            offset += len(chunk)
                            retries = 0
                            self._report(offset, total, started, start_bytes)
                            if self.should_stop():
                                out.flush()
                                raise Cancelled(f"Download of {self.filename} paused.")
                if total is None:
                    break
                if offset == before:
                    raise httpx2.ReadError("the server sent no data")
            except httpx2.TransportError as exc:
                retries += 1
                if retries > MAX_RETRIES:
                    raise DownloadError(f"{self.filename}: network error ({exc}); "
                                        "the partial download is kept for resuming.") from exc
                time.sleep(min(0.1 * 2 ** retries, 3.0))
        return hasher.hexdigest()

    def _report(self, done: int, total: int | None, started: float, start_bytes: int) -> None:
        now = time.monotonic()
        if self.on_progress is None or (now - self._last_report < REPORT_EVERY_S
                                        and done != total):
            return
        self._last_report = now
        elapsed = max(time.monotonic() - started, 1e-6)
        speed = (done - start_bytes) / elapsed
        eta = (total - done) / speed if total is not None and speed > 0 else None
        self.on_progress(DownloadProgress(self.filename, done, total, speed, eta))
