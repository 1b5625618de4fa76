"""The real huggingface_hub client against a local fake Hub: search, listing, downloads."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keyring
import pytest

from macllm_app.core.engines.select import installed
from macllm_app.core.errors import Cancelled, UserError
from macllm_app.core.library import commands
from macllm_app.core.library.catalogue import Catalogue
from macllm_app.core.library.download import Downloader, DownloadError, safe_relative_path
from macllm_app.core.library.pull import hub_dir
from tests.support.fake_hub import FakeHub, FakeRepo
from tests.support.gguf_writer import TinyGGUF
from tests.support.mlx_fixtures import make_mlx_folder
from tests.unit.test_library_token import MemoryKeyring


def _gguf_bytes(tmp: Path, quant: str, emb: int) -> bytes:
    return TinyGGUF.llama(emb=emb, quant=quant).write(tmp / f"{quant}.gguf").read_bytes()


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    src = tmp_path / "src"
    src.mkdir()
    server = FakeHub()
    server.add(FakeRepo("acme/Tiny-GGUF", {
        "tiny-Q4_0.gguf": _gguf_bytes(src, "Q4_0", 64),
        "tiny-Q8_0.gguf": _gguf_bytes(src, "Q8_0", 1024),  # ~2 MB: several chunks
        "README.md": b"# tiny\n",
    }, downloads=50, tags=["gguf", "llama"], library="gguf"))
    server.add(FakeRepo("acme/Tiny-Single-GGUF", {"only-F16.gguf": _gguf_bytes(src, "F16", 64)},
                        downloads=500, tags=["gguf"]))
    mlx = make_mlx_folder(src / "mlx")
    files = {f.name: f.read_bytes() for f in mlx.iterdir()}
    server.add(FakeRepo("mlx-community/Tiny-4bit", {**files, "README.md": b"x"},
                        downloads=100, tags=["mlx"], library="mlx"))
    server.add(FakeRepo("evil/tiny-traversal", {"../evil.gguf": b"GGUF"}, tags=["gguf"]))
    monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    before = keyring.get_keyring()
    keyring.set_keyring(MemoryKeyring())  # never a real keychain's token in tests
    with server:
        yield server
    keyring.set_keyring(before)


def _cdn_gets(hub: FakeHub) -> list[dict[str, str]]:
    return [h for m, p, h in hub.requests if m == "GET" and p.startswith("/cdn/")]


def test_search_filters_and_sorts(hub: FakeHub) -> None:
    ids = [r["id"] for r in commands.search("tiny")]
    assert ids[0] == "acme/Tiny-Single-GGUF" and ids.index("mlx-community/Tiny-4bit") < \
        ids.index("acme/Tiny-GGUF")
    assert [r["id"] for r in commands.search("tiny", fmt="gguf")] == [
        "acme/Tiny-Single-GGUF", "acme/Tiny-GGUF", "evil/tiny-traversal"]
    assert [r["id"] for r in commands.search("tiny", fmt="mlx")] == ["mlx-community/Tiny-4bit"]
    assert commands.search("tiny", fmt="mlx")[0]["formats"] == ["mlx"]


def test_repo_listing(hub: FakeHub) -> None:
    view = commands.repo_files("acme/Tiny-GGUF")
    files = {f["name"]: f for f in view["files"]}
    q8 = hub.repos["acme/Tiny-GGUF"].files["tiny-Q8_0.gguf"]
    assert files["tiny-Q8_0.gguf"]["size"] == len(q8)
    assert files["tiny-Q8_0.gguf"]["sha256"] == hashlib.sha256(q8).hexdigest()
    assert (files["tiny-Q4_0.gguf"]["quant"], files["tiny-Q8_0.gguf"]["quant"]) == ("Q4_0", "Q8_0")
    assert files["README.md"]["git_oid"] and files["README.md"]["quant"] is None
    assert commands.repo_files("mlx-community/Tiny-4bit")["is_mlx"]
    with pytest.raises(UserError, match="HTTP 404"):
        commands.repo_files("acme/missing")


def test_pull_with_progress(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("macllm_app.core.library.download.REPORT_EVERY_S", 0.0)
    seen: list[dict[str, Any]] = []
    entry = commands.pull("acme/Tiny-GGUF", "tiny-Q8_0.gguf", progress=seen.append)
    data = hub.repos["acme/Tiny-GGUF"].files["tiny-Q8_0.gguf"]
    assert Path(entry["path"]).read_bytes() == data
    assert entry["source"] == "hub" and entry["quantization"] == "Q8_0"
    assert len(seen) >= 3
    assert [p["done"] for p in seen] == sorted(p["done"] for p in seen)
    assert seen[-1]["done"] == seen[-1]["total"] == len(data)
    assert seen[-1]["eta_s"] == 0 and seen[-1]["speed_bps"] > 0
    assert Catalogue().get(entry["id"]) is not None
    assert "authorization" not in _cdn_gets(hub)[0]


def test_token_goes_to_the_hub_not_the_cdn(hub: FakeHub) -> None:
    commands.set_hf_token("hf_testtoken")
    commands.pull("acme/Tiny-GGUF", "tiny-Q4_0.gguf")
    api_calls = [h for m, p, h in hub.requests if p.startswith("/api/")]
    assert api_calls and all(h.get("authorization") == "Bearer hf_testtoken" for h in api_calls)
    assert all("authorization" not in h for h in _cdn_gets(hub))


def test_resume_after_connection_drop(hub: FakeHub) -> None:
    hub.faults.drop_after = [700_000]
    entry = commands.pull("acme/Tiny-GGUF", "tiny-Q8_0.gguf")
    assert Path(entry["path"]).read_bytes() == hub.repos["acme/Tiny-GGUF"].files["tiny-Q8_0.gguf"]
    first, second = (h.get("range") for h in _cdn_gets(hub))
    assert first is None
    assert second and 0 < int(second.removeprefix("bytes=").rstrip("-")) <= 700_000


def test_resume_after_restart(hub: FakeHub) -> None:
    calls = {"n": 0}

    def stop_after_first_chunk() -> bool:
        calls["n"] += 1
        return True

    with pytest.raises(Cancelled):
        commands.pull("acme/Tiny-GGUF", "tiny-Q8_0.gguf", should_stop=stop_after_first_chunk)
    dest = hub_dir("acme/Tiny-GGUF") / "tiny-Q8_0.gguf"
    part = dest.with_name(dest.name + ".part")
    kept = part.stat().st_size
    assert 0 < kept < len(hub.repos["acme/Tiny-GGUF"].files["tiny-Q8_0.gguf"])
    assert not dest.exists()
    entry = commands.pull("acme/Tiny-GGUF", "tiny-Q8_0.gguf")  # a new downloader: "restart"
    assert commands.list_models(scan_stores=False)[0]["id"] == entry["id"]
    assert Path(entry["path"]).read_bytes() == hub.repos["acme/Tiny-GGUF"].files["tiny-Q8_0.gguf"]
    assert _cdn_gets(hub)[-1].get("range") == f"bytes={kept}-"
    assert not part.exists()


def test_cancel_discards_partial(hub: FakeHub, tmp_path: Path) -> None:
    dl = Downloader("acme/Tiny-GGUF", "tiny-Q8_0.gguf", tmp_path / "x.gguf",
                    should_stop=lambda: True)
    with pytest.raises(Cancelled):
        dl.run()
    assert dl.part.exists()
    dl.discard()
    assert not dl.part.exists() and not dl.state.exists()
    with pytest.raises(Cancelled):
        commands.pull("acme/Tiny-GGUF", "tiny-Q8_0.gguf", should_stop=lambda: True)
    commands.discard_pull("acme/Tiny-GGUF", "tiny-Q8_0.gguf")
    assert not list(hub_dir("acme/Tiny-GGUF").iterdir())


def test_corrupted_byte_caught_by_sha256(hub: FakeHub) -> None:
    data = hub.repos["acme/Tiny-GGUF"].files["tiny-Q8_0.gguf"]
    hub.faults.corrupt = {hashlib.sha256(data).hexdigest()}
    with pytest.raises(DownloadError, match="checksum"):
        commands.pull("acme/Tiny-GGUF", "tiny-Q8_0.gguf")
    folder = hub_dir("acme/Tiny-GGUF")
    assert not list(folder.iterdir())
    assert Catalogue().entries() == []


@pytest.mark.parametrize("name", ["../evil.gguf", "/etc/passwd", "a\\..\\b.gguf", "C:x.gguf",
                                  "a/./b.gguf", "", "a//b.gguf", "x/../../y"])
def test_hostile_names_refused(name: str) -> None:
    with pytest.raises(DownloadError, match="unsafe name"):
        safe_relative_path(name)


def test_hostile_repo_listing_refuses_pull(hub: FakeHub) -> None:
    with pytest.raises(DownloadError, match="unsafe name"):
        commands.pull("evil/tiny-traversal")
    assert not _cdn_gets(hub)


def test_free_disk_checked_before_download(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    def full_disk(_path: Any) -> Any:
        return shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000)

    monkeypatch.setattr(shutil, "disk_usage", full_disk)
    with pytest.raises(DownloadError, match="Not enough disk space"):
        commands.pull("acme/Tiny-GGUF", "tiny-Q8_0.gguf")
    assert not _cdn_gets(hub)


def test_pull_choices_and_mlx_repo(hub: FakeHub) -> None:
    with pytest.raises(UserError, match="choose one with --file"):
        commands.pull("acme/Tiny-GGUF")
    assert commands.pull("acme/Tiny-Single-GGUF")["quantization"] == "F16"
    mlx = commands.pull("mlx-community/Tiny-4bit")
    # engines lists what this build can run: nothing for MLX folders until the MLX engine lands
    assert mlx["format"] == "mlx" and mlx["engines"] == installed(["mlx"])
    assert not (Path(mlx["path"]) / "README.md").exists()
    with pytest.raises(UserError, match="not a Hugging Face repo id"):
        commands.pull("../../etc")
