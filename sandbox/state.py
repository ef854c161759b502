"""The sandbox's in-memory world: links, paused MFA sessions, queued faults and the call log.

One lock guards everything, so each method is atomic: two concurrent resumes of one session
cannot both claim it, which is the property the real service's tests rely on.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from flask import current_app

from .config import TUNABLE
from .errors import BelvoError


def utc_now() -> str:
    """The current time in RFC 3339 UTC, microseconds included, as Belvo writes it."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


# Challenges confirmed elsewhere (mfa.TOKEN_TYPES): their resume PATCH carries no token.
NO_INPUT_TYPES = frozenset({"approval"})


def institution_user_id(institution: str, username: str) -> str:
    """Belvo's 44-character id of a user at an institution: the same login gives the same id."""
    digest = hashlib.sha256(f"{institution}\0{username}".encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()


@dataclass
class Link:
    """A Belvo link; `mfa_type` is the sandbox's memory of which challenge its bank sends."""

    id: str
    institution: str
    access_mode: str
    external_id: str | None
    status: str
    mfa_type: str | None
    created_by: str
    institution_user_id: str
    created_at: str = dataclasses.field(default_factory=utc_now)
    last_accessed_at: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The link object as Belvo serialises it."""
        return {
            "id": self.id,
            "institution": self.institution,
            "access_mode": self.access_mode,
            "last_accessed_at": self.last_accessed_at,
            "created_at": self.created_at,
            "external_id": self.external_id,
            "institution_user_id": self.institution_user_id,
            "status": self.status,
            "created_by": self.created_by,
            "refresh_rate": "7d" if self.access_mode == "recurrent" else None,
        }


@dataclass(frozen=True)
class MfaSession:
    """A paused Belvo call: answered by one PATCH of `resource` before `expires_at` (monotonic)."""

    id: str
    resource: str
    link_id: str
    token_type: str
    expiry: float
    expires_at: float

    @property
    def expects_user_input(self) -> bool:
        """An approval is confirmed in the bank app, so its PATCH carries no token."""
        return self.token_type not in NO_INPUT_TYPES


@dataclass
class Fault:
    """A misbehaviour to apply to the next `count` upstream calls of kind `match`."""

    id: str
    mode: str
    count: int
    match: str
    status: int | None
    delay_seconds: float
    retry_after: int | None
    body: str | None
    process: bool

    def matches(self, kind: str) -> bool:
        """Whether an upstream call of this kind triggers the fault."""
        return self.match in ("any", kind)


class SandboxState:
    """Thread-safe store shared by every request of one sandbox app."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.lock = threading.Lock()
        self._startup_config = dict(config)
        self.config = dict(config)
        self.created_by = str(uuid.uuid5(uuid.NAMESPACE_URL, f"belvo-sandbox:{config['secret_id']}"))
        self.links: dict[str, Link] = {}
        self.sessions: dict[str, MfaSession] = {}
        self.faults: list[Fault] = []
        self.calls: list[dict[str, Any]] = []

    def reset(self) -> None:
        """Forget everything and return to the settings the server started with."""
        with self.lock:
            self.config = dict(self._startup_config)
            self.links.clear()
            self.sessions.clear()
            self.faults.clear()
            self.calls.clear()

    def update_config(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Apply validated tunable settings; return the new tunable view."""
        with self.lock:
            self.config.update(changes)
            return self.tunables()

    def tunables(self) -> dict[str, Any]:
        """The settings `/_sandbox/config` exposes (never the secrets)."""
        return {key: self.config[key] for key in TUNABLE}

    def save_link(self, link: Link) -> Link:
        """Store (or replace) a link."""
        with self.lock:
            self.links[link.id] = link
            return link

    def add_link(self, link: Link) -> Link:
        """Store a new link, atomically refused (Belvo's 400) if the same login already has one here."""
        with self.lock:
            for other in self.links.values():
                if (other.institution, other.institution_user_id) == (
                    link.institution,
                    link.institution_user_id,
                ):
                    raise BelvoError(
                        400, "duplicated", "A link for these credentials already exists at this institution"
                    )
            self.links[link.id] = link
            return link

    def get_link(self, link_id: str | None) -> Link | None:
        """A copy of the link, or None."""
        with self.lock:
            link = self.links.get(link_id or "")
            return dataclasses.replace(link) if link else None

    def update_link(self, link_id: str, **changes: Any) -> Link | None:
        """Change a stored link's fields; return a copy of the result (None if it is gone)."""
        with self.lock:
            link = self.links.get(link_id)
            if link is None:
                return None
            for name, value in changes.items():
                setattr(link, name, value)
            return dataclasses.replace(link)

    def delete_link(self, link_id: str) -> bool:
        """Remove a link; False if there was none."""
        with self.lock:
            return self.links.pop(link_id, None) is not None

    def list_links(self, filters: dict[str, str] | None = None) -> list[Link]:
        """Copies of the links whose fields equal every filter given, oldest first."""
        with self.lock:
            links = [dataclasses.replace(link) for link in self.links.values()]
        wanted = filters or {}
        return [link for link in links if all(str(link.as_json().get(k)) == v for k, v in wanted.items())]

    def open_session(self, resource: str, link_id: str, token_type: str, expiry: float) -> MfaSession:
        """Register a new paused session."""
        session = MfaSession(
            id=uuid.uuid4().hex,
            resource=resource,
            link_id=link_id,
            token_type=token_type,
            expiry=expiry,
            expires_at=time.monotonic() + expiry,
        )
        with self.lock:
            self.sessions[session.id] = session
        return session

    def claim_session(
        self, session_id: str, resource: str, link_id: str | None, has_token: bool
    ) -> MfaSession:
        """Take a session for answering, atomically: after this no other call can use it.

        Rejections that happen before the session is touched (wrong resource or link, missing
        token) leave it open, as a request Belvo refuses at validation would.
        """
        with self.lock:
            session = self.sessions.get(session_id)
            if session is not None and session.expires_at <= time.monotonic():
                del self.sessions[session_id]
                session = None
            if session is None or session.resource != resource:
                raise BelvoError(400, "session_expired", "The MFA session has expired")
            if link_id and link_id != session.link_id:
                raise BelvoError(400, "invalid_link", "The link does not belong to this session", "link")
            if session.expects_user_input and not has_token:
                raise BelvoError(400, "required", "This field is required.", "token")
            del self.sessions[session_id]
            return session

    def discard_session(self, session_id: Any) -> None:
        """End a session without answering it (a final fault reached Belvo)."""
        with self.lock:
            if isinstance(session_id, str):
                self.sessions.pop(session_id, None)

    def add_fault(self, fault: Fault) -> None:
        """Queue a fault behind the ones already waiting."""
        with self.lock:
            self.faults.append(fault)

    def take_fault(self, kind: str) -> Fault | None:
        """The oldest fault matching this kind of call, its count spent by one."""
        with self.lock:
            for index, fault in enumerate(self.faults):
                if fault.matches(kind):
                    fault.count -= 1
                    if fault.count <= 0:
                        del self.faults[index]
                    return dataclasses.replace(fault)
            return None

    def pending_faults(self) -> list[dict[str, Any]]:
        """The queue of faults, oldest first."""
        with self.lock:
            return [dataclasses.asdict(fault) for fault in self.faults]

    def clear_faults(self) -> None:
        """Drop every queued fault."""
        with self.lock:
            self.faults.clear()

    def log_call(self, record: dict[str, Any]) -> dict[str, Any]:
        """Append an upstream call to the log in arrival order; its status is set later."""
        with self.lock:
            self.calls.append(record)
            return record

    def finish_call(self, record: dict[str, Any], **fields: Any) -> None:
        """Fill in what was answered (status None when no HTTP answer was sent)."""
        with self.lock:
            record.update(fields)

    def find_calls(self, filters: dict[str, str]) -> list[dict[str, Any]]:
        """Copies of logged calls whose fields equal every filter given."""
        with self.lock:
            return [
                dict(call)
                for call in self.calls
                if all(str(call.get(key)) == value for key, value in filters.items())
            ]


def current_state() -> SandboxState:
    """The store of the app handling this request."""
    return current_app.extensions["sandbox_state"]
