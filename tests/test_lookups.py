"""Sessions by the backend's own reference (GET /v1/sessions?external_ref=, mfa/lookups.py): an index
written with each session, read a page at a time, newest first, never by scanning keys."""

from __future__ import annotations

from redis import Redis

from mfa.keys import ref_key, session_key
from tests.inprocess import InProcessApi
from tests.support import Sandbox

LINK = "8848bd0c-9c7e-4f53-a732-ec896b11d4c4"


def by_ref(api: InProcessApi, ref: str, **params: object):
    return api.request("GET", "/v1/sessions", params={"external_ref": ref, **params})


def test_every_way_of_starting_a_session_lists_it_and_pages_run_newest_first(api, sandbox: Sandbox, redis):
    made = [api.created(sandbox.pause(), external_ref="signup-8812") for _ in range(3)]
    retrieval = api.request(
        "POST", "/v1/retrievals", json={"resource": "accounts", "link": LINK, "external_ref": "signup-8812"}
    )
    register = api.request(
        "POST",
        "/v1/links",
        json={
            "institution": "heimdall_mx_retail",
            "username": "u",
            "password": "p",
            "external_ref": "signup-8812",
        },
    )
    assert retrieval.status_code == register.status_code == 202
    made += [retrieval.json(), register.json()]
    api.created(sandbox.pause(), external_ref="someone-else")
    api.created(sandbox.pause())
    redis.config_resetstat()
    seen, cursor, pages = [], None, 0
    while True:
        r = by_ref(api, "signup-8812", limit=2, **({"cursor": cursor} if cursor else {}))
        assert r.status_code == 200, r.text
        page = r.json()
        seen += page["data"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    newest_first = sorted(made, key=lambda s: (s["created_at"], s["id"]), reverse=True)
    assert [s["id"] for s in seen] == [s["id"] for s in newest_first]
    assert {s["external_ref"] for s in seen} == {"signup-8812"}
    assert "client_secret" not in seen[0]
    stats = redis.info("commandstats")
    assert not {"cmdstat_keys", "cmdstat_scan"} & set(stats), "nobody scans the keyspace"


def test_a_session_whose_record_is_gone_is_skipped_and_dropped_from_the_index(api, sandbox, redis: Redis):
    kept, gone = (api.created(sandbox.pause(), external_ref="r-1") for _ in range(2))
    redis.delete(session_key(gone["id"]))  # as when its retention ends
    assert [s["id"] for s in by_ref(api, "r-1").json()["data"]] == [kept["id"]]
    assert redis.zrange(ref_key("r-1"), 0, -1) == [kept["id"].encode()]


def test_the_index_lives_as_long_as_its_sessions(api, sandbox, redis: Redis):
    s = api.created(sandbox.pause(expiry=60), external_ref="r-2")
    assert redis.pttl(ref_key("r-2")) >= redis.pttl(session_key(s["id"])) - 50
    api.submit(s["id"], "999999")  # the next step extends the session, and the index with it
    api.wait(s["id"], {"awaiting_token"}, step=2)
    assert redis.pttl(ref_key("r-2")) >= redis.pttl(session_key(s["id"])) - 50


def test_the_look_up_is_for_api_keys_and_checks_its_parameters(api, sandbox):
    s = api.created(sandbox.pause(), external_ref="r-3")
    assert (
        api.request("GET", "/v1/sessions", s["client_secret"], params={"external_ref": "r-3"}).status_code
        == 401
    )
    assert api.request("GET", "/v1/sessions").status_code == 422
    for bad in ({"limit": 0}, {"limit": 101}, {"cursor": "not-a-cursor"}, {"external_ref": ""}):
        assert by_ref(api, "r-3", **bad).status_code == 422
    # A parameter the route does not know, a typo or one with no name, is refused rather than ignored.
    for unknown in ({"limt": "5"}, {"": "null"}):
        assert by_ref(api, "r-3", **unknown).status_code == 422
    assert api.request("GET", "/v1/events", params={"status": "failed", "": "null"}).status_code == 422
    assert by_ref(api, "no-such-ref").json() == {"data": [], "next_cursor": None}
