"""How the local server runs: one validated `ServerConfig`, and its API key in the keychain.

Secure by default: it binds 127.0.0.1, and an address other than loopback is
served only with an API key (given, or stored in the OS keychain under the
service "MacLLM", name "server-api-key"; never in a file).
"""

from __future__ import annotations

import contextlib
import ipaddress
import secrets

from pydantic import BaseModel, ConfigDict, Field

from macllm_app.core.errors import UserError
from macllm_app.core.library.token import SERVICE, keychain_status

KEYCHAIN_NAME = "server-api-key"
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
MIB = 1024 * 1024


class ServerConfig(BaseModel):
    """Everything `macllm serve` and the app's Server pane can set."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field(default="127.0.0.1", description="Address to bind.")
    port: int = Field(default=8080, ge=0, le=65535, description="TCP port; 0 picks a free one.")
    api_key: str | None = Field(default=None, description="Bearer key clients must send.")
    use_keychain: bool = Field(default=True,
                               description="Without api_key, use the key stored in the keychain.")
    parallel: int = Field(default=4, ge=1, le=64, description="Requests decoded together.")
    queue_size: int = Field(default=16, ge=0, le=4096,
                            description="Requests that may wait beyond the parallel ones.")
    allowed_origins: tuple[str, ...] = Field(
        default=(), description="Browser origins (scheme://host:port) allowed to call the API.")
    allowed_hosts: tuple[str, ...] = Field(
        default=(), description="Extra names the Host header may carry (e.g. a reverse proxy).")
    max_body_bytes: int = Field(default=MIB, ge=1024, description="Largest request body.")
    max_prompt_tokens: int = Field(default=8192, ge=16, description="Longest prompt.")
    max_tokens_cap: int = Field(default=4096, ge=1, description="Largest max_tokens.")
    n_ctx: int | None = Field(default=None, ge=256,
                              description="Context per slot; empty: the Preferences' context.")
    n_threads: int | None = Field(default=None, ge=1, le=512,
                                  description="CPU threads; empty: the Preferences' threads.")
    idle_unload_s: float = Field(default=600.0, ge=0,
                                 description="Unload the model after this long idle; 0: never.")
    client_timeout_s: float = Field(default=60.0, gt=0,
                                    description="A client slower than this to send or read "
                                                "is dropped.")
    model: str | None = Field(default=None,
                              description="Model used when a request names none (library id or "
                                          "name); empty: the Preferences' default model.")

    @property
    def is_loopback(self) -> bool:
        return is_loopback(self.host)


def is_loopback(host: str) -> bool:
    """True for names and addresses only this machine can reach."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def effective_api_key(config: ServerConfig) -> str | None:
    """The key clients must send: the configured one, else the keychain's (if allowed).

    Raises UserError when a non-loopback bind has none.
    """
    key = config.api_key or (stored_api_key() if config.use_keychain else None)
    if not key and not config.is_loopback:
        raise UserError(f"Binding {config.host} needs an API key: other machines could "
                        "reach the server (give one, or store one in the keychain).")
    return key or None


def stored_api_key() -> str | None:
    """The key in the keychain, or None (no key, or no secure keychain)."""
    import keyring
    from keyring.errors import KeyringError

    if not keychain_status().secure:
        return None
    try:
        return keyring.get_password(SERVICE, KEYCHAIN_NAME) or None
    except KeyringError:
        return None


def store_api_key(key: str | None = None) -> str:
    """Store `key` (a new random one when None) in the keychain and return it."""
    import keyring
    from keyring.errors import KeyringError

    status = keychain_status()
    if not status.secure:
        raise UserError("No secure keychain is available on this system, so MacLLM will "
                        "not store a server API key.")
    key = (key or "").strip() or "sk-macllm-" + secrets.token_urlsafe(24)
    if any(c.isspace() for c in key):
        raise UserError("An API key cannot contain spaces.")
    try:
        keyring.set_password(SERVICE, KEYCHAIN_NAME, key)
    except KeyringError as exc:
        raise UserError(f"The keychain refused to store the key ({type(exc).__name__}).") from exc
    return key


def delete_api_key() -> None:
    """Forget the key stored in the keychain (nothing happens without one)."""
    import keyring
    from keyring.errors import KeyringError, PasswordDeleteError

    if not keychain_status().secure:
        return
    with contextlib.suppress(PasswordDeleteError, KeyringError):
        keyring.delete_password(SERVICE, KEYCHAIN_NAME)
