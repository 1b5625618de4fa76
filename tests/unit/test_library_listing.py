"""Library listing: the bundled model, fit verdicts, deleting only owned copies, paused pulls."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from macllm_app.core.errors import UserError
from macllm_app.core.library import commands, listing
from macllm_app.core.library.pull import hub_dir
from tests.support.gguf_writer import TinyGGUF


def test_rows_list_the_bundled_model_once(tmp_path: Path, default_model: Path) -> None:
    rows = listing.library_rows(2048, scan_stores=False)
    assert [r["source"] for r in rows] == ["bundled"]
    assert rows[0]["path"] == str(default_model) and rows[0]["fit"] == "fits"
    commands.import_model(str(default_model), "link")
    rows = listing.library_rows(2048, scan_stores=False)
    assert [r["source"] for r in rows] == ["link"]


def test_only_owned_copies_can_be_deleted(tmp_path: Path) -> None:
    tiny = TinyGGUF.llama().write(tmp_path / "tiny.gguf")
    linked = commands.import_model(str(tiny), "link")
    with pytest.raises(UserError, match="Only models MacLLM copied"):
        listing.delete_owned(linked["path"])
    copied = commands.import_model(str(tiny), "copy")
    assert listing.delete_owned(copied["path"]) == copied["name"]
    assert not Path(copied["path"]).exists() and tiny.exists()
    paths = {r["path"] for r in listing.library_rows(2048, scan_stores=False)}
    assert copied["path"] not in paths and str(tiny) in paths


def test_paused_downloads_are_found_on_disk() -> None:
    folder = hub_dir("acme/Tiny-GGUF")
    folder.mkdir(parents=True)
    (folder / "tiny-Q8_0.gguf.part").write_bytes(b"x" * 100)
    (folder / "tiny-Q8_0.gguf.part.json").write_text(json.dumps({"size": 400}))
    assert listing.paused_downloads() == [
        {"repo_id": "acme/Tiny-GGUF", "file": "tiny-Q8_0.gguf", "done": 100, "total": 400}]


def test_deleting_an_owned_gguf_also_removes_its_mlx_copy(tmp_path: Path) -> None:
    from macllm_app.core.library.mlx_copies import existing_mlx_copy, mlx_copy_path

    tiny = TinyGGUF.llama().write(tmp_path / "tiny.gguf")
    copied = commands.import_model(str(tiny), "copy")
    copy = mlx_copy_path(Path(copied["path"]))
    copy.mkdir(parents=True)
    (copy / "config.json").write_text("{}")  # stands in for a converted folder
    assert existing_mlx_copy(Path(copied["path"])) == copy
    listing.delete_owned(copied["path"])
    assert not copy.exists()
    assert copy.parent.is_dir()  # other copies stay
