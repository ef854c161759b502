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
  mfa:workers         zset worker name -> its last heartbeat (ms), written by each worker's sweeper after
                      every pass that reached Redis; read by the metrics (mfa/backlog.py): live workers
  mfa:link-events:{link}  stream, the Belvo webhooks received for one link (mfa/links.py), oldest first;
                      it expires LINK_EVENTS_RETENTION_SECONDS after its latest event
  mfa:belvo-webhook:{sha256(webhook_id)}  a Belvo webhook already recorded -> its event's id: a
                      redelivery is recognised and recorded once (kept as long as the events)
  mfa:ref:{ref}       zset session id -> created_at (ms): the sessions created with this external_ref,
                      the newest REFS_KEPT; it expires with the last of them (GET /v1/sessions?external_ref=)
  mfa:outbox          stream, the transactional outbox: one entry {e: event id, t: destination index} per
                      webhook delivery to make, written in the transaction that makes the change; read
                      by the workers' deliverers through the consumer group `deliverers`, deleted once settled
  mfa:webhook:{evt}   hash, one webhook event: what it is, its destinations and their delivery state
  mfa:webhook-payload:{evt}    string, the event's payload: its source (a session snapshot or data, JSON)
                      until the first attempt, then the exact bytes sent
  mfa:webhook-attempts:{evt}   list, every delivery attempt of the event (JSON), newest last
  mfa:webhooks:{status}        zset event id -> when it got that status (pending, delivered, failed)
  mfa:webhook-retries zset "{evt} {destination}" -> when its next attempt is due (ms); the sweeper
                      moves a due one back into mfa:outbox
  mfa:idem:*          Idempotency-Key records and each session's list of them (app/idempotency.py)
  mfa:rl:*            rate-limit counters (app/ratelimit.py)

One Redis instance, not Cluster: the scripts derive the Belvo-session index, external_ref index and
webhook keys from their prefixes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

PREFIX = "mfa:"
EXPIRY_ZSET = PREFIX + "expiry"
LEASES_ZSET = PREFIX + "leases"
RETRIES_ZSET = PREFIX + "retries"
WORKERS_ZSET = PREFIX + "workers"
BELVO_PREFIX = PREFIX + "belvo:"
CHANGES_CHANNEL = PREFIX + "changed"
ACK_KEY = PREFIX + "ack"
REF_PREFIX = PREFIX + "ref:"
REFS_KEPT = 1000  # sessions listed per external_ref, the newest
OUTBOX_STREAM = PREFIX + "outbox"
OUTBOX_GROUP = "deliverers"  # the consumer group of every worker's deliverer threads
WEBHOOK_PREFIX = PREFIX + "webhook:"
WEBHOOK_PAYLOAD_PREFIX = PREFIX + "webhook-payload:"
WEBHOOK_ATTEMPTS_PREFIX = PREFIX + "webhook-attempts:"
WEBHOOK_STATUS_PREFIX = PREFIX + "webhooks:"
WEBHOOK_RETRIES_ZSET = PREFIX + "webhook-retries"


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


def link_events_key(link_id: str) -> str:
    """The Belvo webhooks received for one link."""
    return f"{PREFIX}link-events:{link_id}"


def belvo_webhook_key(webhook_id: str) -> str:
    """The marker of a Belvo webhook already recorded (hashed: Belvo's id is any string)."""
    return f"{PREFIX}belvo-webhook:{hashlib.sha256(webhook_id.encode()).hexdigest()}"


def ref_key(external_ref: str) -> str:
    """The index of the sessions created with one external_ref."""
    return REF_PREFIX + external_ref


def webhook_key(event_id: str) -> str:
    """A webhook event's hash."""
    return WEBHOOK_PREFIX + event_id


def webhook_payload_key(event_id: str) -> str:
    """A webhook event's payload (its source, then the bytes sent)."""
    return WEBHOOK_PAYLOAD_PREFIX + event_id


def webhook_attempts_key(event_id: str) -> str:
    """A webhook event's delivery attempts."""
    return WEBHOOK_ATTEMPTS_PREFIX + event_id


def webhook_status_key(status: str) -> str:
    """The webhook events with one delivery status."""
    return WEBHOOK_STATUS_PREFIX + status


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
