"""Every Redis key this service owns, named in one place.

  mfa:session:{id}    hash, the session record (mfa.session.RecordField names its fields)
  mfa:token:{id}      the step's MFA token, from submit until the step ends, then deleted
                      (sealed to SEALING_PUBLIC_KEY when configured: mfa/sealing.py)
  mfa:creds:{id}      the bank credentials of a registration, sealed, until Belvo has answered
  mfa:result:{id}     Belvo's result body of a succeeded session (sealed to RESULT_PUBLIC_KEY when
                      configured), at most RESULT_MAX_BYTES, kept with the record; read only for API keys
  mfa:belvo:{belvo}   Belvo session id -> our id, refuses a second session for the same Belvo session
  mfa:expiry          zset id -> expires_at (ms) of open sessions: the sweeper's work list, no key scans
  mfa:leases          zset id -> lease deadline (ms) of calls in flight; a lapsed lease is a dead worker
  mfa:retries         zset id -> when its next attempt is due (ms); the sweeper enqueues it then
  mfa:events:{id}     stream, one entry per change a reader can see after creation: entry id 0-{version},
                      fields the record as it was then (mfa.session.SNAPSHOT_EXCLUDED left out); it
                      expires with the record. Each entry is announced on the channel mfa:changed
                      ("{id} {version}"), so any web process can follow any session.
  mfa:ack             written before each WAIT, so WAIT covers what its connection wrote (mfa/replicas.py)
  mfa:idem:*          Idempotency-Key records and each session's list of them (app/idempotency.py)
  mfa:rl:*            rate-limit counters (app/ratelimit.py)

One Redis instance, not Cluster: the scripts derive the Belvo-session index key from BELVO_PREFIX.
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "mfa:"
EXPIRY_ZSET = PREFIX + "expiry"
LEASES_ZSET = PREFIX + "leases"
RETRIES_ZSET = PREFIX + "retries"
BELVO_PREFIX = PREFIX + "belvo:"
CHANGES_CHANNEL = PREFIX + "changed"
ACK_KEY = PREFIX + "ack"


def session_key(session_id: str) -> str:
    """The session's hash."""
    return f"{PREFIX}session:{session_id}"


def token_key(session_id: str) -> str:
    """The step's MFA token."""
    return f"{PREFIX}token:{session_id}"


def creds_key(session_id: str) -> str:
    """A registration's sealed bank credentials."""
    return f"{PREFIX}creds:{session_id}"


def result_key(session_id: str) -> str:
    """A succeeded session's stored result."""
    return f"{PREFIX}result:{session_id}"


def belvo_key(belvo_session: str) -> str:
    """The index from Belvo's session id to ours."""
    return BELVO_PREFIX + belvo_session


def events_key(session_id: str) -> str:
    """The session's change log."""
    return f"{PREFIX}events:{session_id}"


@dataclass(frozen=True)
class SessionKeys:
    """The keys every transition script gets, in the order of its KEYS (mfa/transitions.lua)."""

    session: str
    token: str
    expiry: str
    leases: str
    creds: str
    retries: str
    events: str
    result: str

    @classmethod
    def of(cls, session_id: str) -> SessionKeys:
        """The keys of one session."""
        return cls(
            session_key(session_id),
            token_key(session_id),
            EXPIRY_ZSET,
            LEASES_ZSET,
            creds_key(session_id),
            RETRIES_ZSET,
            events_key(session_id),
            result_key(session_id),
        )

    def as_list(self) -> list[str]:
        """KEYS, in order."""
        return [
            self.session,
            self.token,
            self.expiry,
            self.leases,
            self.creds,
            self.retries,
            self.events,
            self.result,
        ]
