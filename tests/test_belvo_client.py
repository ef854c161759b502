"""BelvoClient against `responses`: every unregistered URL fails, so nothing here reaches a network."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator

import pytest
import requests
import responses
from responses import matchers

from mfa.belvo import MAX_BODY_BYTES, BelvoClient, UpstreamUnavailable

BASE = "https://belvo.test"
SECRET_ID = "secret-id-123"
SECRET_PASSWORD = "secret-password-456"
TOKEN = "123456"
SESSION = "2675b703b9d4451f8d4861a3eee54449"
LINK = "8848bd0c-9c7e-4f53-a732-ec896b11d4c4"
LINKS_URL = f"{BASE}/api/links/"
LINK_OBJECT = {"id": LINK, "institution": "heimdall_mx_retail", "status": "valid"}


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        yield rsps


@pytest.fixture
def client() -> BelvoClient:
    return BelvoClient(BASE + "/", SECRET_ID, SECRET_PASSWORD, timeout_seconds=60)


def sent_body(mock: responses.RequestsMock) -> dict:
    [call] = mock.calls
    return json.loads(call.request.body)


def test_resume_patches_links_with_basic_auth_and_exactly_session_token_link(mock, client):
    basic = base64.b64encode(f"{SECRET_ID}:{SECRET_PASSWORD}".encode()).decode()
    mock.patch(
        LINKS_URL,
        json=LINK_OBJECT,
        status=200,
        match=[
            matchers.header_matcher({"Authorization": f"Basic {basic}", "Content-Type": "application/json"}),
            matchers.json_params_matcher({"session": SESSION, "token": TOKEN, "link": LINK}),
        ],
    )
    answer = client.resume("links", session=SESSION, link=LINK, token=TOKEN)
    assert (answer.status, answer.body, answer.is_json) == (200, LINK_OBJECT, True)


def test_resume_omits_the_token_when_none_is_given(mock, client):
    mock.patch(LINKS_URL, json=LINK_OBJECT)
    client.resume("links", session=SESSION, link=LINK, token=None)
    assert sent_body(mock) == {"session": SESSION, "link": LINK}


def test_resume_never_sends_save_data_for_links(mock, client):
    mock.patch(LINKS_URL, json=LINK_OBJECT)
    client.resume("links", session=SESSION, link=LINK, token=TOKEN, save_data=False)
    assert "save_data" not in sent_body(mock)


@pytest.mark.parametrize("save_data", [True, False])
def test_resume_sends_save_data_for_data_resources(mock, client, save_data):
    mock.patch(f"{BASE}/api/accounts/", json=[], status=201)
    client.resume("accounts", session=SESSION, link=LINK, token=TOKEN, save_data=save_data)
    assert sent_body(mock) == {"session": SESSION, "token": TOKEN, "link": LINK, "save_data": save_data}


def test_resume_leaves_save_data_out_when_unset(mock, client):
    mock.patch(f"{BASE}/api/transactions/", json=[], status=201)
    client.resume("transactions", session=SESSION, link=LINK, token=TOKEN)
    assert "save_data" not in sent_body(mock)


def test_investment_portfolios_live_outside_api_and_resume_without_save_data(mock, client):
    mock.patch(f"{BASE}/investments/portfolios/", json={"id": "p-1"}, status=201)
    answer = client.resume("investments/portfolios", session=SESSION, link=LINK, token=TOKEN, save_data=False)
    assert answer.status == 201
    assert sent_body(mock) == {"session": SESSION, "token": TOKEN, "link": LINK}  # PatchBodyWithoutSaveData


def test_employment_records_resume_on_their_collection(mock, client):
    mock.patch(f"{BASE}/api/employment-records/", json=[], status=201)
    client.resume("employment-records", session=SESSION, link=LINK, token=TOKEN, save_data=True)
    assert sent_body(mock)["save_data"] is True


def test_update_link_puts_the_credentials_on_the_link(mock, client):
    fields = {"password": "new-password"}
    mock.put(f"{LINKS_URL}{LINK}/", json=LINK_OBJECT, match=[matchers.json_params_matcher(fields)])
    assert client.update_link(LINK, fields).body == LINK_OBJECT


def test_find_links_filters_the_list_by_external_id_and_institution_with_no_body(mock, client):
    page = {"count": 1, "next": None, "previous": None, "results": [LINK_OBJECT]}
    query = {"external_id": "mfa_1", "institution": "heimdall_mx_retail", "page_size": "100"}
    mock.get(LINKS_URL, json=page, match=[matchers.query_param_matcher(query)])
    assert client.find_links(external_id="mfa_1", institution="heimdall_mx_retail").body == page
    assert mock.calls[0].request.body is None


def test_register_posts_the_fields_to_links(mock, client):
    fields = {"institution": "heimdall_mx_retail", "username": "mfa_numeric", "password": "numeric_code"}
    mock.post(LINKS_URL, json=LINK_OBJECT, status=201, match=[matchers.json_params_matcher(fields)])
    assert client.register(fields).status == 201


@pytest.mark.parametrize(
    ("resource", "path"),
    [("accounts", "/api/accounts/"), ("investments/portfolios", "/investments/portfolios/")],
)
def test_retrieve_posts_the_fields_to_the_resource(mock, client, resource, path):
    fields = {"link": LINK, "save_data": True}
    mock.post(BASE + path, json=[], status=201, match=[matchers.json_params_matcher(fields)])
    assert client.retrieve(resource, fields).body == []


@pytest.mark.parametrize(("seconds", "expected"), [(60, (10.0, 60)), (5, (5, 5))])
def test_every_call_carries_a_connect_and_read_timeout(mock, seconds, expected):
    mock.patch(LINKS_URL, json=LINK_OBJECT)
    BelvoClient(BASE, SECRET_ID, SECRET_PASSWORD, seconds).resume(
        "links", session=SESSION, link=LINK, token=TOKEN
    )
    assert mock.calls[0].request.req_kwargs["timeout"] == expected


def test_redirects_are_answers_not_followed(mock, client):
    mock.patch(LINKS_URL, status=302, headers={"Location": f"{BASE}/elsewhere/"})
    answer = client.resume("links", session=SESSION, link=LINK, token=TOKEN)
    assert answer.status == 302
    assert len(mock.calls) == 1


@pytest.mark.parametrize(
    "failure",
    [
        requests.ConnectTimeout,
        requests.ReadTimeout,
        requests.ConnectionError,
        requests.exceptions.ChunkedEncodingError,
    ],
)
def test_transport_failures_raise_upstream_unavailable_without_request_data(mock, client, failure):
    leaky = failure(f"PATCH {LINKS_URL} token={TOKEN} auth={SECRET_ID}:{SECRET_PASSWORD}")
    mock.patch(LINKS_URL, body=leaky)
    with pytest.raises(UpstreamUnavailable) as raised:
        client.resume("links", session=SESSION, link=LINK, token=TOKEN)
    message = str(raised.value)
    assert message
    for secret in (TOKEN, SECRET_PASSWORD, LINKS_URL, BASE, "belvo.test"):
        assert secret not in message
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


class _DroppedMidBody(io.RawIOBase):
    def readable(self) -> bool:
        return True

    def readinto(self, buffer: object) -> int:
        raise ConnectionResetError(f"reset by {LINKS_URL}")


def test_a_body_cut_off_mid_stream_raises_upstream_unavailable(mock, client):
    mock.patch(LINKS_URL, body=io.BufferedReader(_DroppedMidBody()), status=200)
    with pytest.raises(UpstreamUnavailable) as raised:
        client.resume("links", session=SESSION, link=LINK, token=TOKEN)
    assert LINKS_URL not in str(raised.value)


def test_an_unregistered_url_is_unavailable_not_a_network_call(client):
    with responses.RequestsMock(), pytest.raises(UpstreamUnavailable):
        client.resume("owners", session=SESSION, link=LINK, token=TOKEN)


@pytest.mark.parametrize("body", ["<html>Bad gateway</html>", "", b"\xff\xfe not utf-8"])
def test_a_body_that_is_not_json_gives_is_json_false(mock, client, body):
    mock.patch(LINKS_URL, body=body, status=502, content_type="text/html")
    answer = client.resume("links", session=SESSION, link=LINK, token=TOKEN)
    assert (answer.status, answer.body, answer.is_json) == (502, None, False)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ({"Retry-After": "120"}, 120.0),
        ({"Retry-After": "1.5"}, 1.5),
        ({"Retry-After": "-3"}, 0.0),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, None),
        ({}, None),
    ],
)
def test_retry_after_seconds_are_parsed_and_dates_ignored(mock, client, header, expected):
    mock.patch(LINKS_URL, json=[{"code": "too_many_requests"}], status=429, headers=header)
    assert client.resume("links", session=SESSION, link=LINK, token=TOKEN).retry_after == expected


def test_a_body_over_the_limit_is_dropped_and_marked_oversized(mock, client):
    huge = json.dumps(["x" * MAX_BODY_BYTES])
    mock.patch(LINKS_URL, body=huge, status=200, content_type="application/json")
    answer = client.resume("links", session=SESSION, link=LINK, token=TOKEN)
    assert (answer.status, answer.body, answer.is_json, answer.oversized) == (200, None, False, True)


def test_a_body_at_the_limit_is_kept(mock):
    body = json.dumps({"id": LINK, "pad": "x" * 1000})
    client = BelvoClient(BASE, SECRET_ID, SECRET_PASSWORD, timeout_seconds=60, max_body_bytes=len(body))
    mock.patch(LINKS_URL, body=body, status=200, content_type="application/json")
    answer = client.resume("links", session=SESSION, link=LINK, token=TOKEN)
    assert answer.is_json and answer.body["id"] == LINK and not answer.oversized
    mock.patch(LINKS_URL, body=body + " ", status=200, content_type="application/json")
    assert client.resume("links", session=SESSION, link=LINK, token=TOKEN).oversized


def test_json_nested_past_the_parsers_depth_is_not_json_not_a_crash(mock, client):
    mock.patch(LINKS_URL, body="[" * 100_000 + "]" * 100_000, status=200, content_type="application/json")
    answer = client.resume("links", session=SESSION, link=LINK, token=TOKEN)
    assert (answer.status, answer.body, answer.is_json) == (200, None, False)


def test_repr_shows_no_credentials(client):
    assert SECRET_PASSWORD not in repr(client) and SECRET_ID not in repr(client)
