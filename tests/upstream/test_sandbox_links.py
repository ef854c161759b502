"""The sandbox's link routes over real HTTP, through the official SDK: the links list and its filters,
the credentials update (PUT) as Belvo answers it, a registration whose answer is lost, and the LINK
webhooks it sends on request."""

from __future__ import annotations

import json

import pytest
import requests
from belvo.client import Client
from belvo.exceptions import RequestError

from tests.receiver import receiving
from tests.upstream.process import HEX32, SECRET, outcome


@pytest.fixture
def control(base_url: str):
    def call(method: str, path: str, body: dict | None = None) -> requests.Response:
        return requests.request(method, f"{base_url}/_sandbox{path}", json=body, timeout=5)

    return call


def _paused_registration(client: Client, institution: str = "heimdall_mx_retail", **fields) -> dict:
    with pytest.raises(RequestError) as paused:
        client.Links.create(institution, "mfa_numeric", "numeric_code", raise_exception=True, **fields)
    assert paused.value.status_code == 428
    return paused.value.detail[0]


def test_the_links_list_filters_by_external_id_and_institution(client):
    mine = client.Links.create("erebor_mx_retail", "ana", "pw-1", external_id="user-42")
    client.Links.create("erebor_co_retail", "ana", "pw-1", external_id="user-42")
    client.Links.create("erebor_mx_retail", "bea", "pw-2", external_id="user-43")
    found = list(client.Links.list(external_id="user-42", institution="erebor_mx_retail"))
    assert [link["id"] for link in found] == [mine["id"]]
    assert len(list(client.Links.list(external_id="user-42"))) == 2
    assert [link["status"] for link in client.Links.list(status="valid")] == ["valid"] * 3


def test_a_short_external_id_is_refused(client):
    with pytest.raises(RequestError) as refused:
        client.Links.create("erebor_mx_retail", "ana", "pw", external_id="ab", raise_exception=True)
    assert (refused.value.status_code, refused.value.detail[0]["field"]) == (400, "external_id")


def test_updating_an_mfa_link_asks_for_a_token_and_is_resumed_on_links(client):
    challenge = _paused_registration(client)
    link = challenge["link"]
    client.Links.resume(challenge["session"], "111111", link=link)
    # Belvo-python's update sends password and save_data; an MFA bank asks for a token again.
    with pytest.raises(RequestError) as again:
        client.Links.update(link, password="numeric_code", raise_exception=True)
    [pause] = again.value.detail
    assert again.value.status_code == 428 and pause["link"] == link and HEX32.match(pause["session"])
    assert client.Links.get(link)["status"] == "token_required"
    assert client.Links.resume(pause["session"], "111111", link=link)["status"] == "valid"


def test_updating_a_link_without_mfa_answers_the_link_and_a_failed_login_invalidates_it(client):
    link = client.Links.create("erebor_mx_retail", "ana", "old-password")["id"]
    assert client.Links.update(link, password="new-password", raise_exception=True)["status"] == "valid"
    with pytest.raises(RequestError) as failed:
        client.Links.update(link, password="pass_invalid", raise_exception=True)
    assert (failed.value.status_code, failed.value.detail[0]["code"]) == (400, "login_error")
    assert client.Links.get(link)["status"] == "invalid"
    with pytest.raises(RequestError) as unknown:
        client.Links.update("0d3ffb69-f83b-456e-ad8e-208d0998d71d", password="x", raise_exception=True)
    assert (unknown.value.status_code, unknown.value.detail[0]["code"]) == (404, "not_found")


def test_a_registration_processed_then_dropped_leaves_the_link_to_be_found(base_url, client, control):
    control("POST", "/faults", {"mode": "drop", "match": "register", "process": True})
    body = {"institution": "heimdall_mx_retail", "username": "mfa_numeric", "password": "numeric_code"}
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.post(
            f"{base_url}/api/links/", json={**body, "external_id": "sess-1"}, auth=SECRET, timeout=5
        )
    [link] = client.Links.list(external_id="sess-1", institution="heimdall_mx_retail")
    assert link["status"] == "token_required"  # its 428 was lost with the answer
    [call] = control("GET", "/calls?kind=register").json()
    assert (call["fault"], call["status"]) == ("drop", None)
    control("POST", "/faults", {"mode": "status", "status": 500, "match": "register", "process": True})
    failed = requests.post(
        f"{base_url}/api/links/", json={**body, "institution": "gotham_mx_business"}, auth=SECRET, timeout=5
    )
    assert outcome(failed) == (500, "unexpected_error")
    assert [link["institution"] for link in client.Links.list(status="token_required")] == [
        "heimdall_mx_retail",
        "gotham_mx_business",
    ]


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [
        ("token_required", "token_required", "token_required"),
        ("invalid_credentials", "invalid", "login_error"),
    ],
)
def test_a_link_webhook_is_sent_to_a_loopback_url_with_its_authorization(
    client, control, code, status, error
):
    link = client.Links.create("erebor_mx_retail", "ana", "pw", external_id="user-42")["id"]
    with receiving() as receiver:
        hook = {
            "url": f"{receiver.url}/hooks",
            "link": link,
            "webhook_code": code,
            "authorization": "Bearer wh-1",
        }
        sent = control("POST", "/webhooks", hook)
        assert sent.status_code == 200, sent.text
        [got] = receiver.on("/hooks")
    assert sent.json()["status"] == 200
    headers, webhook = got.headers, json.loads(got.body)
    assert headers["authorization"] == "Bearer wh-1"
    assert webhook == sent.json()["webhook"]
    assert (webhook["webhook_type"], webhook["webhook_code"], webhook["link_id"]) == ("LINK", code, link)
    assert webhook["external_id"] == "user-42" and webhook["process_type"] == "recurrent_update"
    assert webhook["data"]["error_code"] == error and HEX32.match(webhook["request_id"])
    assert webhook["webhook_id"]
    assert client.Links.get(link)["status"] == status


def test_webhooks_go_to_loopback_only_and_name_a_known_link(client, control):
    link = client.Links.create("erebor_mx_retail", "ana", "pw")["id"]
    for url in ("http://10.0.0.1/hooks", "http://example.com/hooks", "ftp://127.0.0.1/x", None):
        assert control("POST", "/webhooks", {"url": url, "link": link}).status_code == 400
    missing = control("POST", "/webhooks", {"url": "http://127.0.0.1:9/x", "link": "nope"})
    assert missing.status_code == 400 and "link" in missing.json()["error"]
    refused = control("POST", "/webhooks", {"url": "http://127.0.0.1:9/x", "link": link})
    assert refused.status_code == 200 and refused.json()["status"] is None  # nothing listens there
