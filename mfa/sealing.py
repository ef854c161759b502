"""Bank credentials at rest: Fernet-encrypted with CREDENTIALS_KEY, never stored or logged in plain text."""

from __future__ import annotations

import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken


class CredentialsUnreadable(Exception):
    """The stored credentials cannot be decrypted (wrong or rotated key, corrupted data)."""


class CredentialVault:
    """Encrypts and decrypts one registration's credential fields as a single token."""

    def __init__(self, key: str) -> None:
        self._fernet = Fernet(key)

    def __repr__(self) -> str:
        return "CredentialVault(***)"

    def seal(self, fields: dict[str, Any]) -> bytes:
        """Encrypt the fields (authenticated encryption: tampering is detected on open)."""
        return self._fernet.encrypt(json.dumps(fields, separators=(",", ":")).encode())

    def open(self, sealed: bytes) -> dict[str, Any]:
        """Decrypt what seal() produced."""
        try:
            fields: dict[str, Any] = json.loads(self._fernet.decrypt(sealed))
            return fields
        except (InvalidToken, ValueError):
            raise CredentialsUnreadable("stored credentials could not be decrypted") from None
