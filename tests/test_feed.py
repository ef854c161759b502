"""The change feed (mfa/feed.py) on the real Redis: one subscription, fanned out, made again after a loss."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest
from redis import Redis

from devstack.processes import Proc, wait_for
from mfa.connections import Role, connect
from mfa.feed import ChangeFeed
from mfa.keys import CHANGES_CHANNEL
from mfa.settings import Settings


@pytest.fixture
def feed(redis_server: Proc, redis: Redis) -> Iterator[ChangeFeed]:
    """A feed as a web process makes it: its own client, as the web's ACL user (mfa/acl.py)."""
    made = ChangeFeed(connect(Settings(redis_url=redis_server.extra["urls"]["web"]), Role.FEED))
    yield made
    made.close()


def _subscribed(feed: ChangeFeed, times: int = 1) -> None:
    wait_for(lambda: feed.subscriptions >= times, 5, f"subscription number {times}")


def test_an_announcement_wakes_the_watches_of_its_session_only(feed, redis):
    with ExitStack() as stack:
        a1, a2 = (stack.enter_context(feed.watch("mfa_a")) for _ in range(2))
        b = stack.enter_context(feed.watch("mfa_b"))
        _subscribed(feed)
        for watch in (a1, a2, b):
            watch.wait(0)  # take the wake every watch gets when the feed subscribes
        redis.publish(CHANGES_CHANNEL, "mfa_a 2")
        assert a1.wait(5) and a2.wait(5)
        assert not b.wait(0.3)
    assert feed.watching() == 0  # a watch ends with its block


def test_many_watches_share_one_subscription(feed, redis):
    with ExitStack() as stack:
        for i in range(50):
            stack.enter_context(feed.watch(f"mfa_{i}"))
        _subscribed(feed)
        assert feed.watching() == 50
        wait_for(lambda: redis.pubsub_numsub(CHANGES_CHANNEL)[0][1] == 1, 5, "a single subscriber")


def test_a_lost_subscription_is_made_again_and_every_watch_is_woken_to_reread(feed, redis):
    with feed.watch("mfa_a") as a, feed.watch("mfa_b") as b:
        _subscribed(feed)
        a.wait(0), b.wait(0)
        killed = redis.client_kill_filter(_type="pubsub")
        assert killed >= 1
        # Whatever was announced while it was down is lost: the feed wakes everyone to read the log.
        _subscribed(feed, 2)
        assert a.wait(5) and b.wait(5) and not a.closing
        redis.publish(CHANGES_CHANNEL, "mfa_b 3")
        assert b.wait(5)


def test_close_wakes_every_watch_as_closing_and_later_watches_start_closed(feed):
    with feed.watch("mfa_a") as a:
        _subscribed(feed)
        feed.close()
        assert a.wait(5) and a.closing
    with feed.watch("mfa_b") as b:
        assert b.closing
