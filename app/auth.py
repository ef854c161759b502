"""Bearer credentials: backend API keys, or a session's client secret (good for that session only)."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from flask import request

from app.errors import ApiError
from app.models import MfaSession
from app.store import SessionStore

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="mfa-sessions"'}


def new_client_secret() -> tuple[str, str]:
    """A fresh client secret (256 random bits) and the hash we store instead of it."""
    secret = "mcs_" + secrets.token_urlsafe(32)
    return secret, hash_secret(secret)


def hash_secret(secret: str) -> str:
    """SHA-256 suffices: the secret is random, so there is nothing to brute-force."""
    return hashlib.sha256(secret.encode()).hexdigest()


def bearer_credential() -> str:
    """The Bearer credential of this request; 401 when there is none."""
    header = request.headers.get("Authorization", "")
    scheme, _, credential = header.partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise ApiError(
            401,
            "unauthorized",
            "Authentication required",
            "Send Authorization: Bearer <credential>.",
            headers=_CHALLENGE,
        )
    return credential.strip()


def is_api_key(credential: str, api_keys: tuple[str, ...]) -> bool:
    """Constant-time membership: every key is compared, whatever matched first."""
    given = credential.encode()
    found = False
    for key in api_keys:
        found |= hmac.compare_digest(given, key.encode())
    return found


def require_api_key(api_keys: tuple[str, ...]) -> None:
    """Allow backend API keys only."""
    if not is_api_key(bearer_credential(), api_keys):
        raise ApiError(
            401,
            "invalid_credentials",
            "Invalid credentials",
            "This route needs a backend API key.",
            headers=_CHALLENGE,
        )


def authorize_session(store: SessionStore, session_id: str, api_keys: tuple[str, ...]) -> MfaSession:
    """The session, if the credential opens it; 404 otherwise, so ids cannot be probed."""
    credential = bearer_credential()
    not_found = ApiError(404, "session_not_found", "No such session")
    if len(session_id) > 64:
        raise not_found
    session = store.get(session_id)  # SessionNotFound answers 404 as well
    if is_api_key(credential, api_keys):
        return session
    if not hmac.compare_digest(hash_secret(credential), session.secret_hash):
        raise not_found
    return session
