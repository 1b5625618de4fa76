"""The Hugging Face token lives only in the OS keychain (keyring), never in files or logs.

When no secure backend exists (keyring's fail/null backends, or a plaintext
one from keyrings.alt) we say so and store nothing.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from macllm_app.core.errors import UserError

SERVICE = "MacLLM"
USERNAME = "huggingface-token"
_INSECURE_MODULES = ("keyring.backends.fail", "keyring.backends.null", "keyrings.alt")


@dataclass(frozen=True, slots=True)
class KeychainStatus:
    secure: bool
    backend: str
    reason: str


def _is_secure(backend: object) -> bool:
    from keyring.backends.chainer import ChainerBackend

    if isinstance(backend, ChainerBackend):
        return any(_is_secure(b) for b in backend.backends)
    module = type(backend).__module__
    if module.startswith(_INSECURE_MODULES) or "plaintext" in type(backend).__name__.lower():
        return False
    priority = getattr(backend, "priority", 0)
    return isinstance(priority, int | float) and priority > 0


def keychain_status() -> KeychainStatus:
    import keyring

    backend = keyring.get_keyring()
    name = f"{type(backend).__module__}.{type(backend).__name__}"
    if _is_secure(backend):
        return KeychainStatus(True, name, "")
    return KeychainStatus(False, name, "No secure keychain is available on this system, so "
                          "MacLLM will not store a Hugging Face token.")


def set_token(token: str) -> None:
    """Store the token in the keychain; UserError (nothing stored) without a secure one."""
    import keyring
    from keyring.errors import KeyringError

    status = keychain_status()
    if not status.secure:
        raise UserError(status.reason)
    token = token.strip()
    if not token or any(c.isspace() for c in token):
        raise UserError("That does not look like a Hugging Face token.")
    try:
        keyring.set_password(SERVICE, USERNAME, token)
    except KeyringError as exc:
        raise UserError(f"The keychain refused to store the token ({type(exc).__name__}).") from exc


def get_token() -> str | None:
    """The stored token, or None (no token, or no secure keychain)."""
    import keyring
    from keyring.errors import KeyringError

    if not keychain_status().secure:
        return None
    try:
        return keyring.get_password(SERVICE, USERNAME) or None
    except KeyringError:
        return None


def delete_token() -> None:
    import keyring
    from keyring.errors import KeyringError, PasswordDeleteError

    if not keychain_status().secure:
        return
    with contextlib.suppress(PasswordDeleteError, KeyringError):
        keyring.delete_password(SERVICE, USERNAME)
