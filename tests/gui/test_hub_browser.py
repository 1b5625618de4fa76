"""The Hub browser against the local fake Hub: search, files, download, pause, cancel, token."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keyring
import pytest
from keyring.backends.null import Keyring as NullKeyring

from tests.support.fake_hub import FakeHub, FakeRepo
from tests.support.gguf_writer import TinyGGUF
from tests.support.library_gui_helpers import open_library, rows_by_path
from tests.support.slow_hub import slow_cdn
from tests.unit.test_library_token import MemoryKeyring

pytestmark = pytest.mark.gui


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    before = keyring.get_keyring()
    ring = MemoryKeyring()
    keyring.set_keyring(ring)  # never a real keychain in tests
    yield ring
    keyring.set_keyring(before)


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        memory_keyring: MemoryKeyring) -> Iterator[FakeHub]:
    src = tmp_path / "src"
    src.mkdir()
    big = TinyGGUF.llama(emb=1024, quant="Q8_0").write(src / "big.gguf").read_bytes()
    small = TinyGGUF.llama(quant="Q4_0").write(src / "small.gguf").read_bytes()
    server = FakeHub()
    server.add(FakeRepo("acme/Tiny-GGUF", {"tiny-Q4_0.gguf": small, "tiny-Q8_0.gguf": big,
                                           "README.md": b"# tiny\n"},
                        downloads=50, tags=["gguf"], library="gguf"))
    server.add(FakeRepo("acme/Popular-GGUF", {"p-Q4_0.gguf": small}, downloads=5000,
                        tags=["gguf"], library="gguf"))
    server.add(FakeRepo("mlx-community/Tiny-4bit", {"config.json": b"{}"}, downloads=90,
                        tags=["mlx"], library="mlx"))
    monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with server:
        yield server


def _search(qtbot: Any, browser: Any, query: str, fmt: str | None) -> list[str]:
    browser.query.setText(query)
    browser.format.setCurrentIndex(browser.format.findData(fmt))
    browser.search_button.click()
    qtbot.waitUntil(lambda: browser.status.text() not in ("", "Searching…"), timeout=20_000)
    return [browser.result_table.item(r, 0).text() for r in range(browser.result_table.rowCount())]


def _open_file(qtbot: Any, browser: Any, repo_id: str, name: str) -> None:
    row = next(r for r in range(browser.result_table.rowCount())
               if browser.result_table.item(r, 0).text() == repo_id)
    browser.result_table.selectRow(row)
    qtbot.waitUntil(lambda: browser.repo is not None and browser.repo["id"] == repo_id,
                    timeout=20_000)
    files = [browser.file_table.item(r, 0).text() for r in range(browser.file_table.rowCount())]
    browser.file_table.selectRow(files.index(name))
    assert browser.download_button.isEnabled()


def test_search_and_download_with_progress(qtbot: Any, make_window: Any, hub: FakeHub,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("macllm_app.core.library.download.REPORT_EVERY_S", 0.0)
    window = make_window(load=False)
    pane = open_library(qtbot, window)
    browser = pane.hub
    pane.tabs.setCurrentWidget(browser)
    assert _search(qtbot, browser, "tiny", "gguf") == ["acme/Tiny-GGUF"]
    assert _search(qtbot, browser, "", "mlx") == ["mlx-community/Tiny-4bit"]
    assert _search(qtbot, browser, "", None)[0] == "acme/Popular-GGUF"
    assert browser.result_table.item(0, 1).text() == "5,000"

    _search(qtbot, browser, "tiny", "gguf")
    _open_file(qtbot, browser, "acme/Tiny-GGUF", "tiny-Q8_0.gguf")
    sizes = {browser.file_table.item(r, 0).text(): (browser.file_table.item(r, 1).text(),
                                                    browser.file_table.item(r, 2).text())
             for r in range(browser.file_table.rowCount())}
    assert sizes["tiny-Q8_0.gguf"][1] == "Q8_0" and sizes["README.md"][1] == ""
    seen: list[int] = []
    browser.downloads.bar.valueChanged.connect(seen.append)
    with (qtbot.waitSignal(pane.refreshed, timeout=30_000),
          qtbot.waitSignal(browser.downloads.downloaded, timeout=30_000)):
        browser.download_button.click()
    bar = browser.downloads.bar
    assert bar.value() == bar.maximum() and len(seen) >= 2
    assert browser.downloads.label.text() == "Downloaded"
    hub_rows = [r for r in pane.model.rows() if r["source"] == "hub"]
    assert len(hub_rows) == 1 and hub_rows[0]["quantization"] == "Q8_0"
    data = hub.repos["acme/Tiny-GGUF"].files["tiny-Q8_0.gguf"]
    assert Path(hub_rows[0]["path"]).read_bytes() == data
    assert hub_rows[0]["path"] in rows_by_path(pane)


def test_pause_keeps_the_partial_and_download_resumes_it(
        qtbot: Any, make_window: Any, hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    from macllm_app.core.library.pull import hub_dir

    slow_cdn(monkeypatch, pause_s=0.05)
    window = make_window(load=False)
    browser = open_library(qtbot, window).hub
    _search(qtbot, browser, "tiny", "gguf")
    _open_file(qtbot, browser, "acme/Tiny-GGUF", "tiny-Q8_0.gguf")
    part = hub_dir("acme/Tiny-GGUF") / "tiny-Q8_0.gguf.part"
    downloads = browser.downloads
    browser.download_button.click()
    qtbot.waitUntil(lambda: "MB/s" in downloads.label.text() or "KB/s" in downloads.label.text(),
                    timeout=20_000)
    downloads.pause_button.click()
    qtbot.waitUntil(lambda: not downloads.is_running(), timeout=20_000)
    assert downloads.label.text().startswith("Paused")
    assert part.exists() and part.stat().st_size > 0
    kept = part.stat().st_size

    window.close()  # an app restart: a new window finds the paused download on disk

    pane = open_library(qtbot, make_window(load=False))
    browser = pane.hub
    pane.tabs.setCurrentWidget(browser)
    paused = browser.paused
    qtbot.waitUntil(lambda: paused.choice.count() == 1 and not paused.isHidden(),
                    timeout=10_000)
    assert paused.choice.currentText().startswith("acme/Tiny-GGUF/tiny-Q8_0.gguf (")
    with qtbot.waitSignal(browser.downloads.downloaded, timeout=30_000):
        paused.resume_button.click()
    ranges = [h.get("range") for m, p, h in hub.requests if m == "GET" and p.startswith("/cdn/")]
    assert ranges[-1] == f"bytes={kept}-"
    assert browser.downloads.bar.value() == browser.downloads.bar.maximum()
    assert not part.exists()
    qtbot.waitUntil(paused.isHidden, timeout=10_000)


def test_cancel_removes_the_partial(qtbot: Any, make_window: Any, hub: FakeHub,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from macllm_app.core.library.pull import hub_dir

    slow_cdn(monkeypatch, pause_s=0.05)
    window = make_window(load=False)
    browser = open_library(qtbot, window).hub
    _search(qtbot, browser, "tiny", "gguf")
    _open_file(qtbot, browser, "acme/Tiny-GGUF", "tiny-Q8_0.gguf")
    part = hub_dir("acme/Tiny-GGUF") / "tiny-Q8_0.gguf.part"
    browser.download_button.click()
    qtbot.waitUntil(part.exists, timeout=20_000)
    browser.downloads.cancel_button.click()
    qtbot.waitUntil(lambda: browser.downloads.label.text() == "Cancelled", timeout=20_000)
    qtbot.waitUntil(lambda: not part.exists(), timeout=10_000)
    assert not (hub_dir("acme/Tiny-GGUF") / "tiny-Q8_0.gguf").exists()


def test_token_is_stored_in_the_keychain(qtbot: Any, make_window: Any,
                                         memory_keyring: MemoryKeyring) -> None:
    from macllm_app.core.library.token import SERVICE, USERNAME
    from macllm_app.ui.panes.library.token_box import TokenBox

    box = TokenBox()
    qtbot.addWidget(box)
    box.show()
    qtbot.waitUntil(lambda: box.status.text() == "No token stored.", timeout=10_000)
    box.edit.setText("hf_secret")
    box.save_button.click()
    qtbot.waitUntil(lambda: box.status.text() == "A token is stored in the keychain.",
                    timeout=10_000)
    assert memory_keyring.store[(SERVICE, USERNAME)] == "hf_secret"
    assert box.edit.text() == ""
    box.remove_button.click()
    qtbot.waitUntil(lambda: box.status.text() == "No token stored.", timeout=10_000)


def test_without_a_secure_keychain_the_token_box_says_so(qtbot: Any) -> None:
    from macllm_app.ui.panes.library.token_box import TokenBox

    before = keyring.get_keyring()
    keyring.set_keyring(NullKeyring())
    try:
        box = TokenBox()
        qtbot.addWidget(box)
        box.show()
        qtbot.waitUntil(lambda: "No secure keychain" in box.status.text(), timeout=10_000)
        assert not box.edit.isEnabled() and not box.save_button.isEnabled()
    finally:
        keyring.set_keyring(before)
