"""The HF token goes only to a secure keychain; never to settings, logs or the catalogue."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail, null

from macllm_app.core.errors import UserError
from macllm_app.core.library import commands, token


class MemoryKeyring(KeyringBackend):
    priority = 5

    def __init__(self) -> None:
        super().__init__()
        self.store: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.store.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.store[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.store.pop((service, username), None)


@pytest.fixture
def restore_keyring() -> Iterator[None]:
    before = keyring.get_keyring()
    yield
    keyring.set_keyring(before)


def test_secure_keychain_round_trip(restore_keyring: None, macllm_home: Path) -> None:
    ring = MemoryKeyring()
    keyring.set_keyring(ring)
    commands.set_hf_token("hf_secret123")
    assert ring.store == {(token.SERVICE, token.USERNAME): "hf_secret123"}
    assert token.get_token() == "hf_secret123"
    status = commands.hf_token_status()
    assert status["secure_keychain"] and status["token_stored"]
    assert "hf_secret123" not in repr(status)
    on_disk = b"".join(p.read_bytes() for p in macllm_home.rglob("*") if p.is_file())
    assert b"hf_secret123" not in on_disk
    commands.delete_hf_token()
    assert token.get_token() is None


@pytest.mark.parametrize("backend", [fail.Keyring, null.Keyring])
def test_no_secure_backend_stores_nothing(restore_keyring: None, backend: type) -> None:
    keyring.set_keyring(backend())
    status = commands.hf_token_status()
    assert not status["secure_keychain"] and "No secure keychain" in status["message"]
    with pytest.raises(UserError, match="No secure keychain"):
        commands.set_hf_token("hf_secret123")
    assert token.get_token() is None


def test_plaintext_backend_counts_as_insecure(restore_keyring: None) -> None:
    class PlaintextKeyring(MemoryKeyring):
        pass

    keyring.set_keyring(PlaintextKeyring())
    assert not token.keychain_status().secure
