"""LinkEvents (mfa/links.py) on a real Redis: each Belvo webhook recorded once, whatever the deliveries,
and whatever a caller adds to the recording transaction committed with the event or not at all."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from redis import Redis

from mfa.keys import belvo_webhook_key, link_events_key
from mfa.links import LinkEvent, LinkEvents

LINK = "8848bd0c-9c7e-4f53-a732-ec896b11d4c4"
T0 = 1_700_000_000_000
RETENTION_SECONDS = 3600


def _event(webhook_id: str = "wh-1", **fields) -> LinkEvent:
    return LinkEvent(
        webhook_id=webhook_id,
        webhook_type="LINK",
        webhook_code=fields.pop("webhook_code", "token_required"),
        link_id=LINK,
        data={"error_code": "token_required"},
        **fields,
    )


def test_an_event_is_stored_with_its_time_and_read_back_oldest_first(redis: Redis):
    events = LinkEvents(redis, RETENTION_SECONDS)
    first = events.record(_event("wh-1", external_id="user-42"), T0)
    second = events.record(_event("wh-2", webhook_code="invalid_credentials"), T0 + 1)
    assert not first.duplicate and not second.duplicate
    stored = events.for_link(LINK)
    assert [e.webhook_id for e in stored] == ["wh-1", "wh-2"]
    assert stored[0] == first.event and stored[0].received_at_ms == T0
    assert stored[0].public()["received_at"] == "2023-11-14T22:13:20.000Z"
    assert (stored[0].external_id, stored[1].external_id, stored[0].data) == (
        "user-42",
        None,
        {"error_code": "token_required"},
    )
    assert 0 < redis.pttl(link_events_key(LINK)) <= RETENTION_SECONDS * 1000
    assert 0 < redis.pttl(belvo_webhook_key("wh-1")) <= RETENTION_SECONDS * 1000


def test_a_redelivery_is_recognised_and_answers_the_first_recording(redis: Redis):
    events = LinkEvents(redis, RETENTION_SECONDS)
    first = events.record(_event("wh-1"), T0)
    again = events.record(_event("wh-1", webhook_code="something_else"), T0 + 5)
    assert again.duplicate and again.event == first.event
    assert len(events.for_link(LINK)) == 1


def test_concurrent_deliveries_of_one_webhook_record_it_once(redis: Redis):
    events = LinkEvents(redis, RETENTION_SECONDS)
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda n: events.record(_event("wh-race"), T0 + n), range(32)))
    assert sum(not r.duplicate for r in results) == 1
    assert len(events.for_link(LINK)) == 1


def test_what_a_caller_adds_commits_with_the_event_and_never_for_a_duplicate(redis: Redis):
    events = LinkEvents(redis, RETENTION_SECONDS)
    seen: list[tuple[bool, str]] = []

    def outbox(pipe, event: LinkEvent) -> None:
        seen.append((pipe.explicit_transaction, event.webhook_id))
        pipe.rpush("test:outbox", event.webhook_id)

    events.record(_event("wh-1"), T0, also=outbox)
    events.record(_event("wh-1"), T0 + 1, also=outbox)
    assert seen == [(True, "wh-1")]  # called inside the MULTI, once
    assert redis.lrange("test:outbox", 0, -1) == [b"wh-1"]
