"""Credential encryption and token hashing.

Credentials are encrypted with Fernet. ``INTERLINK_SECRET_KEY`` is a
comma-separated list of keys: the first encrypts, all decrypt, so a new key
can be put first while the old one still reads what it wrote. API keys and
connection tokens are stored only as SHA-256 hashes: they are long random
values, so a plain hash is enough and lookups stay exact.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from interlink.errors import InterlinkError


class SecretKeyError(InterlinkError):
    """The configured secret keys are missing, malformed, or cannot decrypt a value."""


class CredentialBox:
    """Encrypts and decrypts credential mappings with the configured Fernet keys."""

    def __init__(self, keys: str) -> None:
        parts = [part.strip() for part in keys.split(",") if part.strip()]
        if not parts:
            raise SecretKeyError(
                "INTERLINK_SECRET_KEY is empty; set it to a Fernet key "
                "(create one with: interlink secret-key)"
            )
        fernets = []
        for position, part in enumerate(parts, start=1):
            try:
                fernets.append(Fernet(part))
            except ValueError as exc:
                raise SecretKeyError(
                    f"key {position} of INTERLINK_SECRET_KEY is not a valid Fernet key "
                    "(32 url-safe base64-encoded bytes); create one with: interlink secret-key"
                ) from exc
        self._fernet = MultiFernet(fernets)

    def encrypt(self, credentials: Mapping[str, str]) -> bytes:
        return self._fernet.encrypt(json.dumps(dict(credentials), sort_keys=True).encode())

    def decrypt(self, token: bytes) -> dict[str, str]:
        try:
            plain = self._fernet.decrypt(token)
        except InvalidToken as exc:
            raise SecretKeyError(
                "stored credentials cannot be decrypted with any key in INTERLINK_SECRET_KEY; "
                "add the key they were encrypted with to the list"
            ) from exc
        value = json.loads(plain)
        assert isinstance(value, dict)
        return {str(key): str(item) for key, item in value.items()}


def generate_secret_key() -> str:
    return Fernet.generate_key().decode()


def generate_token(prefix: str) -> str:
    """Return a new random token such as ``ilk_...`` with 256 bits of entropy."""
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
