"""Who is calling: the request's principal, resolved once per request and used by every check.

A Bearer credential is a backend API key, which may do everything, or a session's client secret, which
opens that session only (like a payment intent's client secret). A credential that does not open the
named session is answered exactly as a session that does not exist (404), so ids cannot be probed.
The rate limiter (app/ratelimit.py) and the views read the same principal: the credential is parsed,
hashed and compared once, and the session it names is read once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from flask import g, request

from app.errors import ApiError
from app.services import services
from mfa.errors import SessionNotFound
from mfa.session import Audience, MfaSession

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="mfa-sessions"'}
MAX_SESSION_ID_LENGTH = 64  # longer ids name no session


def new_client_secret() -> tuple[str, str]:
    """A fresh client secret (256 random bits) and the hash we store instead of it."""
    secret = "mcs_" + secrets.token_urlsafe(32)
    return secret, hash_secret(secret)


def hash_secret(secret: str) -> str:
    """SHA-256 suffices: the secret is random, so there is nothing to brute-force."""
    return hashlib.sha256(secret.encode()).hexdigest()


def is_api_key(credential: str, api_keys: tuple[str, ...]) -> bool:
    """Constant-time membership: every key is compared, whatever matched first."""
    given = credential.encode()
    found = False
    for key in api_keys:
        found |= hmac.compare_digest(given, key.encode())
    return found


@dataclass(frozen=True)
class Principal:
    """The request's caller, and the session its route names if the credential opens it."""

    credential: bool  # a Bearer credential was sent
    api_key: bool  # it is a backend API key
    session_id: str | None = None  # the session the route names
    session: MfaSession | None = None  # that session, when it exists and the credential opens it

    @property
    def audience(self) -> Audience:
        """How much of a session this caller may see."""
        return Audience.BACKEND if self.api_key else Audience.FRONTEND

    @property
    def opens_session(self) -> bool:
        """The credential may act on the named session (an API key may act on any)."""
        return self.api_key or self.session is not None


def bearer_credential() -> str | None:
    """The request's Bearer credential, as sent (for keying, never for storing or logging)."""
    scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
    credential = credential.strip()
    return credential if scheme.lower() == "bearer" and credential else None


def _resolve(session_id: str | None) -> Principal:
    credential = bearer_credential()
    if credential is None:
        return Principal(credential=False, api_key=False, session_id=session_id)
    api_key = is_api_key(credential, services().settings.api_keys)
    session = None
    if session_id is not None and len(session_id) <= MAX_SESSION_ID_LENGTH:
        try:
            found = services().store.get(session_id)
        except SessionNotFound:
            found = None
        if found is not None and (api_key or hmac.compare_digest(hash_secret(credential), found.secret_hash)):
            session = found
    return Principal(credential=True, api_key=api_key, session_id=session_id, session=session)


def current_principal() -> Principal:
    """The request's principal, resolved on first use (with the session its route names) and kept."""
    principal: Principal | None = g.get("principal")
    if principal is None:
        session_id = (request.view_args or {}).get("session_id")
        principal = _resolve(str(session_id) if session_id is not None else None)
        g.principal = principal
    return principal


def _unauthorized() -> ApiError:
    return ApiError(
        401,
        "unauthorized",
        "Authentication required",
        "Send Authorization: Bearer <credential>.",
        headers=_CHALLENGE,
    )


def require_api_key() -> None:
    """Allow backend API keys only."""
    principal = current_principal()
    if not principal.credential:
        raise _unauthorized()
    if not principal.api_key:
        raise ApiError(
            401,
            "invalid_credentials",
            "Invalid credentials",
            "This route needs a backend API key.",
            headers=_CHALLENGE,
        )


def authorize_session() -> MfaSession:
    """The session the route names, if the credential opens it; 404 otherwise, so ids cannot be probed."""
    principal = current_principal()
    if not principal.credential:
        raise _unauthorized()
    if principal.session is None:
        raise ApiError(404, "session_not_found", "No such session")
    return principal.session
