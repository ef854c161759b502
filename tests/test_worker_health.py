"""The worker's heartbeat and `--check`: healthy only while a live worker holds the file and has touched
it recently; a second worker on the same file is told, not silently merged."""

from __future__ import annotations

import os
import time
from pathlib import Path

from mfa.clock import now_ms
from mfa.keys import WORKERS_ZSET
from worker.health import FORGET_AFTER_MS, Heartbeat, check


def test_a_fresh_heartbeat_of_a_held_file_is_healthy(tmp_path, redis):
    path = str(tmp_path / "hb")
    beat = Heartbeat(path, "w1")
    assert beat.acquire()
    beat.beat(redis, now_ms())
    healthy, why = check(path, 30)
    assert healthy, why
    assert redis.zscore(WORKERS_ZSET, "w1") is not None
    beat.release(redis)


def test_a_stale_heartbeat_is_unhealthy(tmp_path, redis):
    path = str(tmp_path / "hb")
    beat = Heartbeat(path, "w1")
    assert beat.acquire()
    beat.beat(redis, now_ms())
    old = time.time() - 31
    os.utime(path, (old, old))  # as if no sweep had reached Redis for 31 s
    healthy, why = check(path, 30)
    assert not healthy and "31." in why
    assert check(path, 60)[0]
    beat.release(redis)


def test_a_file_no_live_worker_holds_is_unhealthy_at_once(tmp_path, redis):
    path = str(tmp_path / "hb")
    beat = Heartbeat(path, "w1")
    assert beat.acquire()
    beat.beat(redis, now_ms())
    beat.release(redis)  # the process is gone: its lock with it, whatever the file's age
    healthy, why = check(path, 30)
    assert not healthy and "no running worker" in why
    assert redis.zscore(WORKERS_ZSET, "w1") is None


def test_no_file_is_unhealthy(tmp_path):
    healthy, why = check(str(tmp_path / "missing"), 30)
    assert not healthy and "no heartbeat file" in why


def test_a_second_worker_on_the_same_file_does_not_take_it(tmp_path, redis):
    path = str(tmp_path / "hb")
    first, second = Heartbeat(path, "w1"), Heartbeat(path, "w2")
    assert first.acquire()
    assert not second.acquire()
    second.beat(redis, now_ms())  # still counted as live in Redis, but touches no file
    assert Path(path).read_text().strip() == str(os.getpid())
    first.release(redis)
    second.release(redis)


def test_names_of_long_gone_workers_are_forgotten(tmp_path, redis):
    redis.zadd(WORKERS_ZSET, {"ancient": now_ms() - FORGET_AFTER_MS - 1})
    Heartbeat(str(tmp_path / "hb"), "w1").beat(redis, now_ms())
    assert redis.zrange(WORKERS_ZSET, 0, -1) == [b"w1"]
