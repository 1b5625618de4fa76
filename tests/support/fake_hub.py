"""A local stand-in for the Hugging Face Hub, enough for the real huggingface_hub client.

Serves what the client calls: `GET /api/models` (search), `GET /api/models/{repo}
[/revision/{rev}]` (repo info with `blobs=True` siblings and LFS sha256),
`HEAD/GET /{repo}/resolve/{rev}/{file}` (X-Repo-Commit, ETag, X-Linked-Etag,
X-Linked-Size; LFS files redirect to a "CDN" on another origin, `localhost`),
and `GET /cdn/{sha256}` with Range requests. Faults can be injected: drop the
connection after N bytes, or flip a byte of what is served.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

LFS_SUFFIXES = (".gguf", ".safetensors", ".bin")


@dataclass
class FakeRepo:
    id: str
    files: dict[str, bytes]
    downloads: int = 0
    likes: int = 0
    tags: list[str] = field(default_factory=list)
    library: str | None = None
    sha: str = "c0ffee" + "0" * 34

    def is_lfs(self, name: str) -> bool:
        return name.endswith(LFS_SUFFIXES)

    def sibling(self, name: str) -> dict[str, object]:
        data = self.files[name]
        blob = hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()
        out: dict[str, object] = {"rfilename": name, "size": len(data), "blobId": blob}
        if self.is_lfs(name):
            out["lfs"] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                          "pointerSize": 134}
        return out


@dataclass
class Faults:
    drop_after: list[int] = field(default_factory=list)  # per CDN GET, in order
    corrupt: set[str] = field(default_factory=set)  # sha256 of blobs served with a flipped byte


class FakeHub:
    def __init__(self) -> None:
        self.repos: dict[str, FakeRepo] = {}
        self.faults = Faults()
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.lock = threading.Lock()
        hub = self

        class Handler(_Handler):
            owner = hub

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add(self, repo: FakeRepo) -> FakeRepo:
        self.repos[repo.id] = repo
        return repo

    def blob(self, sha: str) -> bytes | None:
        for repo in self.repos.values():
            for data in repo.files.values():
                if hashlib.sha256(data).hexdigest() == sha:
                    return data
        return None

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that hang up mid-transfer (the point of some tests)


class _Handler(BaseHTTPRequestHandler):
    owner: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _json(self, obj: object, status: int = 200) -> None:
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, code: str = "EntryNotFound") -> None:
        body = json.dumps({"error": code}).encode()
        self.send_response(status)
        self.send_header("X-Error-Code", code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self) -> None:
        self._route(head=True)

    def do_GET(self) -> None:
        self._route(head=False)

    def _route(self, head: bool) -> None:
        url = urlsplit(self.path)
        path = unquote(url.path)
        with self.owner.lock:
            self.owner.requests.append(
                (self.command, path, {k.lower(): v for k, v in self.headers.items()}))
        if path == "/api/models":
            return self._search(parse_qs(url.query))
        if path.startswith("/api/models/"):
            rest = path.removeprefix("/api/models/")
            repo_id = "/".join(rest.split("/")[:2])
            return self._info(repo_id)
        if path.startswith("/cdn/"):
            return self._cdn(path.removeprefix("/cdn/"), head)
        parts = path.lstrip("/").split("/")
        if len(parts) >= 5 and parts[2] == "resolve":
            return self._resolve("/".join(parts[:2]), "/".join(parts[4:]), head)
        return self._error(404, "RepoNotFound")

    def _search(self, q: dict[str, list[str]]) -> None:
        text = (q.get("search") or [""])[0].lower()
        filters = q.get("filter", [])
        found = [r for r in self.owner.repos.values()
                 if text in r.id.lower()
                 and all(f in r.tags or f == r.library for f in filters)]
        if (q.get("sort") or [""])[0] == "downloads":
            found.sort(key=lambda r: -r.downloads)
        limit = int((q.get("limit") or ["1000"])[0])
        self._json([{"id": r.id, "modelId": r.id, "downloads": r.downloads, "likes": r.likes,
                     "tags": r.tags, "library_name": r.library} for r in found[:limit]])

    def _info(self, repo_id: str) -> None:
        repo = self.owner.repos.get(repo_id)
        if repo is None:
            return self._error(404, "RepoNotFound")
        self._json({"id": repo.id, "sha": repo.sha, "downloads": repo.downloads,
                    "tags": repo.tags, "library_name": repo.library,
                    "siblings": [repo.sibling(n) for n in repo.files]})

    def _resolve(self, repo_id: str, name: str, head: bool) -> None:
        repo = self.owner.repos.get(repo_id)
        if repo is None or name not in repo.files:
            return self._error(404)
        data = repo.files[name]
        sha = hashlib.sha256(data).hexdigest()
        if repo.is_lfs(name):
            self.send_response(302)
            self.send_header("Location", f"http://localhost:{self.owner.port}/cdn/{sha}")
            self.send_header("X-Repo-Commit", repo.sha)
            self.send_header("ETag", '"pointer-etag"')
            self.send_header("X-Linked-Etag", f'"{sha}"')
            self.send_header("X-Linked-Size", str(len(data)))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        self._send_bytes(data, head, {"X-Repo-Commit": repo.sha, "ETag": f'"{sha[:40]}"'})
        return None

    def _cdn(self, sha: str, head: bool) -> None:
        data = self.owner.blob(sha)
        if data is None:
            return self._error(404)
        if sha in self.owner.faults.corrupt:
            data = data[:len(data) // 2] + bytes([data[len(data) // 2] ^ 1]) + \
                data[len(data) // 2 + 1:]
        self._send_bytes(data, head, {"ETag": f'"{sha}"'})
        return None

    def _send_bytes(self, data: bytes, head: bool, extra: dict[str, str]) -> None:
        start = 0
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        for k, v in extra.items():
            self.send_header(k, v)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        if head:
            return
        body = data[start:]
        drop = None
        if self.command == "GET" and self.path.startswith("/cdn/"):
            with self.owner.lock:
                if self.owner.faults.drop_after:
                    drop = self.owner.faults.drop_after.pop(0)
        if drop is not None and drop < len(body):
            self.wfile.write(body[:drop])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)
