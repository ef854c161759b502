"""Named errors of the session domain; app/errors.py maps each to its HTTP problem."""

from __future__ import annotations


class ConfigError(RuntimeError):
    """A required setting is missing or malformed; the message says which and why."""


class SessionError(Exception):
    """Base of the domain errors."""


class SessionNotFound(SessionError):
    """No session with that id (or the credential does not open it)."""


class DuplicateSession(SessionError):
    """A session for this Belvo session id is already stored."""


class SessionExpired(SessionError):
    """Belvo's session is over; nothing more can be submitted."""


class SessionNotAwaitingToken(SessionError):
    """The session is not waiting for a token (already submitted, finished, cancelled)."""

    def __init__(self, status: object) -> None:
        super().__init__(f"session is {getattr(status, 'value', status)}")
        self.status = status


class WriteNotAcknowledged(Exception):
    """Fewer replicas than REDIS_WAIT_REPLICAS acknowledged a write in time: it may not survive a failover."""

    def __init__(self, acknowledged: int, wanted: int) -> None:
        super().__init__(f"{acknowledged} of {wanted} replica(s) acknowledged the write")
        self.acknowledged, self.wanted = acknowledged, wanted
