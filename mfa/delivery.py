"""One webhook attempt for one outbox entry: load the event, sign, POST, record what it meant.

What an attempt's answer means (Standard Webhooks' recommendations): a 2xx is delivered; a timeout, a
connection error, 408, 429 or a 5xx is retried on WEBHOOK_RETRY_SCHEDULE, not before a Retry-After;
any other answer (3xx: redirects are not followed; other 4xx) fails at once, as does a destination the
policy refuses. A failed event stays readable and can be redelivered.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from mfa import metrics
from mfa.clock import now_ms
from mfa.destinations import Answer, WebhookSender
from mfa.outbox import Entry, Outbox
from mfa.session import rfc3339
from mfa.webhooks import DeliveryStatus, Signer, next_attempt_at

log = logging.getLogger(__name__)
RETRIED_STATUSES = frozenset({408, 429})


def verdict(answer: Answer) -> DeliveryStatus | None:
    """DELIVERED, FAILED, or None: try again."""
    if answer.status is None:
        return DeliveryStatus.FAILED if answer.refused else None
    if 200 <= answer.status < 300:
        return DeliveryStatus.DELIVERED
    if answer.status in RETRIED_STATUSES or answer.status >= 500:
        return None
    return DeliveryStatus.FAILED


@dataclass(frozen=True)
class DeliveryRunner:
    """Makes and records one attempt of one delivery."""

    outbox: Outbox
    sender: WebhookSender
    signer: Signer
    schedule: tuple[float, ...]

    def deliver(self, entry: Entry) -> str:
        """Attempt the entry's delivery and record it; returns what happened, for the log."""
        event = self.outbox.load(entry.event)
        if event is None or entry.target >= len(event.destinations):
            self.outbox.ack(entry)
            return "gone"
        if event.states[entry.target] is not DeliveryStatus.PENDING:
            # A duplicate entry (a redelivery or takeover raced this one): the destination has moved on.
            self.outbox.ack(entry)
            return "stale"
        url, round_ = event.destinations[entry.target], event.rounds[entry.target]
        body = event.body()
        started = now_ms()
        headers = self.signer.headers(event.id, started // 1000, body)
        answer = self.sender.post(url, body.encode(), headers)
        now = now_ms()
        outcome = verdict(answer)
        due = None
        if outcome is None:
            due = next_attempt_at(self.schedule, round_ + 1, answer.retry_after, now)
            outcome = DeliveryStatus.FAILED if due is None else None
        attempt = {
            "destination": entry.target,
            "at": rfc3339(started),
            "http_status": answer.status,
            "error": answer.error,
            "duration_ms": answer.duration_ms,
        }
        settled = self.outbox.settle(
            entry, round=round_, outcome=outcome, due_ms=due, attempt=attempt, body=body, now_ms=now
        )
        metrics.webhook_delivery(
            "refused" if answer.refused else (outcome.value if outcome is not None else "retrying"),
            answer.duration_ms / 1000,
        )
        what = outcome.value if outcome is not None else f"retry in {(due or now) - now} ms"
        log.info(
            "webhook %s (%s) to destination %d: attempt %d, %s -> %s%s",
            event.id,
            event.type,
            entry.target,
            round_ + 1,
            answer.status or answer.error,
            what,
            "" if settled == "settled" else f" ({settled})",
        )
        return what
