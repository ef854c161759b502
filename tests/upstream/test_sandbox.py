"""The sandbox over real HTTP: a subprocess, driven by the official SDK and by plain requests.

Its Belvo side: institutions and credentials, the MFA pause and resume, data calls, faults and its
control API. The link routes (list, update) and the webhooks it sends: tests/upstream/test_sandbox_links.py.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from belvo.client import Client
from belvo.enums import AccessMode
from belvo.exceptions import BelvoAPIException, RequestError

from tests.upstream.process import HEX32, SECRET, outcome, running_sandbox


@pytest.fixture
def api(base_url: str):
    def call(method: str, path: str, auth: tuple[str, str] = SECRET, timeout: float = 5, **body):
        return requests.request(method, f"{base_url}{path}", json=body, auth=auth, timeout=timeout)

    return call


@pytest.fixture
def control(base_url: str):
    def call(method: str, path: str, body: dict | None = None) -> requests.Response:
        return requests.request(method, f"{base_url}/_sandbox{path}", json=body, timeout=5)

    return call


def paused(control, **body) -> dict:
    response = control("POST", "/sessions", body)
    assert response.status_code == 200, response.text
    return response.json()[0]


def register(api, username: str | None, password: str, institution: str = "heimdall_mx_retail"):
    body = {"institution": institution, "username": username, "password": password}
    return api("POST", "/api/links/", **{key: value for key, value in body.items() if value is not None})


def resume(api, session: str, token: str | None = "111111", path: str = "/api/links/", **extra):
    body = {"session": session, **({"token": token} if token is not None else {}), **extra}
    return api("PATCH", path, **body)


def test_login_and_authentication(base_url, api):
    with pytest.raises(BelvoAPIException, match="Login failed"):
        Client(SECRET[0], "wrong", base_url)
    response = api("POST", "/api/links/", auth=("nobody", "nothing"), institution="heimdall_mx_retail")
    assert outcome(response) == (401, "authentication_failed")
    assert outcome(api("GET", "/api/nowhere/")) == (404, "not_found")


def test_command_line_flags_win_over_environment(tmp_path):
    flags = ["--secret-id", "cli-id", "--secret-password", "cli-pw", "--token-required-shape", "object"]
    with running_sandbox(tmp_path, *flags, env={"SANDBOX_SECRET_ID": "env-id"}) as url:
        assert requests.get(f"{url}/api/", auth=("cli-id", "cli-pw"), timeout=5).status_code == 200
        assert requests.get(f"{url}/api/", auth=("env-id", "cli-pw"), timeout=5).status_code == 401
        config = requests.get(f"{url}/_sandbox/config", timeout=5).json()
        assert config["token_required_shape"] == "object"


def test_register_without_mfa(client):
    link = client.Links.create("erebor_mx_retail", "user_valid", "pass_valid", raise_exception=True)
    # Belvo's default access_mode is recurrent, refreshed every 7 days.
    assert (link["status"], link["access_mode"], link["refresh_rate"]) == ("valid", "recurrent", "7d")
    assert link["created_at"].endswith("Z") and str(uuid.UUID(link["created_by"])) == link["created_by"]
    assert len(link["institution_user_id"]) == 44
    assert client.Links.get(link["id"])["id"] == link["id"]
    assert client.Links.delete(link["id"]) is True
    assert client.Links.delete(link["id"]) is False


@pytest.mark.parametrize(
    ("institution", "username", "password"),
    [
        ("erebor_co_retail", "jdoe", "s3cret"),  # the guide: ordinary credentials create a link
        ("gringotts_br_retail", "mfa_numeric", "numeric_code"),  # no MFA at a bank without it
        ("heimdall_mx_retail", "jdoe", "s3cret"),  # an MFA bank logs ordinary credentials in too
        ("gotham_co_business", "user_valid", "pass_valid"),
    ],
)
def test_ordinary_credentials_create_a_valid_link(client, institution, username, password):
    link = client.Links.create(institution, username, password, raise_exception=True)
    assert (link["institution"], link["status"]) == (institution, "valid")


def test_access_mode_single_and_a_duplicate_link(client, api):
    link = client.Links.create("erebor_mx_retail", "jdoe", "s3cret", access_mode=AccessMode.SINGLE)
    assert (link["access_mode"], link["refresh_rate"]) == ("single", None)
    # The guide: the same login at the same bank again is refused with a 400 (its code is the sandbox's).
    assert outcome(register(api, "jdoe", "other", "erebor_mx_retail")) == (400, "duplicated")
    assert register(api, "jdoe", "s3cret", "erebor_co_retail").status_code == 201


@pytest.mark.parametrize(
    ("institution", "username", "password", "code", "field"),
    [
        ("narnia_mx_retail", "user_valid", "pass_valid", "does_not_exist", "institution"),
        ("heimdall_mx_retail", None, "pass_valid", "required", "username"),
        ("heimdall_mx_retail", "", "pass_valid", "blank", "username"),
        ("gotham_mx_business", "user_invalid", "pass_valid", "login_error", None),
        ("erebor_mx_retail", "user_valid", "pass_invalid", "login_error", None),
    ],
)
def test_register_rejections(api, institution, username, password, code, field):
    response = register(api, username, password, institution)
    assert outcome(response) == (400, code)
    assert response.json()[0].get("field") == field


def test_numeric_mfa_with_the_sdk(client, control):
    with pytest.raises(RequestError) as paused_register:
        client.Links.create("heimdall_mx_retail", "mfa_numeric", "numeric_code", raise_exception=True)
    assert paused_register.value.status_code == 428
    [challenge] = paused_register.value.detail
    assert challenge["code"] == "token_required" and challenge["expiry"] == 9600
    assert HEX32.match(challenge["session"]) and HEX32.match(challenge["request_id"])
    data = challenge["token_generation_data"]
    # The spec's example: a challenge code (`value`) the user's token generator turns into the token.
    assert (data["type"], data["instructions"], data["expects_user_input"]) == (
        "numeric",
        "Use this code to generate the token",
        True,
    )
    assert data["value"].isdigit() and len(data["value"]) == 5
    link_id = challenge["link"]
    assert client.Links.get(link_id)["status"] == "token_required"
    [again] = client.Links.resume(challenge["session"], "999999", link=link_id)
    assert again["code"] == "token_required" and again["session"] != challenge["session"]
    assert again["link"] == link_id
    [stale] = client.Links.resume(challenge["session"], "111111", link=link_id)
    assert stale["code"] == "session_expired"
    link = client.Links.resume(again["session"], "111111", link=link_id)
    assert link["status"] == "valid" and link["id"] == link_id
    [call] = control("GET", f"/calls?session={again['session']}").json()
    assert (call["status"], call["token"], call["kind"], call["auth_ok"]) == (200, "111111", "resume", True)
    assert call["body_keys"] == ["link", "session", "token"]


def test_session_is_single_use_and_bad_tokens_end_it(api, control):
    challenge = paused(control)
    response = api("PATCH", "/api/links/", link=challenge["link"])
    assert (outcome(response), response.json()[0]["field"]) == ((400, "required"), "session")
    response = resume(api, challenge["session"], token=None)
    assert (outcome(response), response.json()[0]["field"]) == ((400, "required"), "token")
    assert outcome(resume(api, challenge["session"], "123456")) == (400, "invalid_token")
    assert outcome(resume(api, challenge["session"])) == (400, "session_expired")
    assert outcome(resume(api, "f" * 32)) == (400, "session_expired")


def test_qr_device_and_approval_challenges(api, client):
    qr = register(api, "mfa_qr", "qr_code", "heimdall_br_retail")
    data = qr.json()[0]["token_generation_data"]
    assert qr.status_code == 428 and data["type"] == "qr_code" and data["expects_user_input"] is True
    assert data["value"].startswith("belvo-sandbox://mfa?session=")  # the QR code's data, to render
    # The guide's mfa_default: a code the user's device shows, submitted like any token.
    [device] = register(api, "mfa_default", "pass_valid", "gotham_mx_business").json()
    assert device["token_generation_data"]["type"] == "device"
    assert device["token_generation_data"]["expects_user_input"] is True
    assert outcome(resume(api, device["session"], token=None)) == (400, "required")
    assert client.Links.resume(device["session"], "111111", link=device["link"])["status"] == "valid"
    # The sandbox's own no-input flow: approved in the bank app, resumed without a token.
    [approval] = register(api, "mfa_approval", "pass_valid").json()
    assert approval["token_generation_data"]["expects_user_input"] is False
    done = resume(api, approval["session"], token=None, link=approval["link"])
    assert (done.status_code, done.json()["status"]) == (200, "valid")


def test_expired_session(api, control):
    challenge = paused(control, expiry=0.2)
    assert challenge["expiry"] == 1  # Belvo's expiry is whole seconds on the wire
    time.sleep(0.3)  # past the sandbox's own deadline
    assert outcome(resume(api, challenge["session"])) == (400, "session_expired")


def test_session_belongs_to_its_resource_and_link(api, control):
    session = paused(control, resource="accounts", token_type="qr_code")["session"]
    assert outcome(resume(api, session)) == (400, "session_expired")
    assert outcome(resume(api, session, path="/api/accounts/", link="0" * 32)) == (400, "invalid_link")
    response = resume(api, session, path="/api/accounts/", save_data=False)
    assert response.status_code == 200 and len(response.json()) == 2


def paused_link_session(api, link_id: str) -> str:
    """A fresh 428 on the link's registration: a credentials update asks for a token again."""
    response = api("PUT", f"/api/links/{link_id}/", password="numeric_code")
    assert response.status_code == 428
    return response.json()[0]["session"]


def test_data_calls_on_an_mfa_link_pause_every_time(client, api):
    link_id = register(api, "mfa_numeric", "numeric_code").json()[0]["link"]
    assert outcome(api("POST", "/api/accounts/", link=link_id)) == (400, "unconfirmed_link")
    client.Links.resume(paused_link_session(api, link_id), "111111", link=link_id)
    with pytest.raises(RequestError) as paused_accounts:
        client.Accounts.create(link_id, raise_exception=True)
    session = paused_accounts.value.detail[0]["session"]
    accounts = client.Accounts.resume(session, "111111", link=link_id)
    fields = {"id", "link", "institution", "category", "type", "name", "number", "balance", "currency"}
    assert fields <= set(accounts[0])
    response = api("POST", "/api/transactions/", link=link_id, date_from="2024-01-01", save_data=False)
    assert response.status_code == 428
    done = resume(api, response.json()[0]["session"], path="/api/transactions/", save_data=False)
    assert done.status_code == 200 and done.json()[0]["account"]["id"] == accounts[0]["id"]
    portfolios = api("POST", "/investments/portfolios/", link=link_id)
    resumed = resume(api, portfolios.json()[0]["session"], path="/investments/portfolios/")
    assert (portfolios.status_code, resumed.status_code) == (428, 201)
    assert isinstance(resumed.json(), dict) and resumed.json()["type"] == "FIXED_INCOME"  # one object
    with pytest.raises(RequestError) as paused_records:
        client.EmploymentRecords.create(link_id, raise_exception=True)
    records = client.EmploymentRecords.resume(
        paused_records.value.detail[0]["session"], "111111", link=link_id
    )
    assert isinstance(records, list) and records[0]["link"] == link_id


def test_answer_shapes_follow_the_spec(client, api):
    link = client.Links.create("erebor_mx_retail", "user_valid", "pass_valid")["id"]
    assert isinstance(api("POST", "/investments/portfolios/", link=link).json(), dict)
    assert isinstance(api("POST", "/api/incomes/", link=link).json(), dict)  # the spec's POST: one object
    mfa_link = register(api, "mfa_numeric", "numeric_code").json()[0]["link"]
    client.Links.resume(paused_link_session(api, mfa_link), "111111", link=mfa_link)
    session = api("POST", "/api/incomes/", link=mfa_link).json()[0]["session"]
    resumed = resume(api, session, path="/api/incomes/", link=mfa_link)
    assert resumed.status_code == 201 and isinstance(resumed.json(), list)  # the spec's PATCH: a list


def test_data_calls_without_mfa(client, api):
    link = client.Links.create("heimdall_mx_retail", "user_valid", "pass_valid")
    transactions = client.Transactions.create(link["id"], "2024-01-01", raise_exception=True)
    assert {row["type"] for row in transactions} == {"INFLOW", "OUTFLOW"}
    response = api("POST", "/api/owners/", link=link["id"], save_data=False)
    assert response.status_code == 200 and response.json()[0]["link"] == link["id"]
    unknown = api("POST", "/api/balances/", link=str(uuid.uuid4()))
    assert (outcome(unknown), unknown.json()[0]["field"]) == ((400, "does_not_exist"), "link")


def test_object_shape_and_config(api, control):
    assert control("PUT", "/config", {"token_required_shape": "object", "session_expiry_seconds": 60}).ok
    config = control("GET", "/config").json()
    assert config == {
        "latency_ms": 0,
        "token_required_shape": "object",
        "session_expiry_seconds": 60,
        "token_required_expiry": "integer",
    }
    response = register(api, "mfa_numeric", "numeric_code")
    assert response.status_code == 428 and response.json()["expiry"] == 60
    assert control("PUT", "/config", {"token_required_shape": "tuple"}).status_code == 400
    assert control("POST", "/reset").json()["config"]["token_required_shape"] == "list"


@pytest.mark.parametrize(("form", "expiry"), [("string", "9600"), ("absent", None)])
def test_expiry_as_belvos_guide_writes_it_or_not_at_all(control, form, expiry):
    assert control("PUT", "/config", {"token_required_expiry": form}).ok
    assert paused(control).get("expiry") == expiry


def test_concurrent_resumes_of_one_session_complete_once(api, control):
    session = paused(control)["session"]
    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = sorted(pool.map(lambda _: resume(api, session).status_code, range(20)))
    assert statuses == [200] + [400] * 19
    assert len(control("GET", f"/calls?session={session}").json()) == 20


def test_latency_is_served_concurrently(api, control):
    control("PUT", "/config", {"latency_ms": 200})
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(lambda _: api("GET", "/api/").status_code, range(16)))
    assert statuses == [200] * 16
    assert 0.2 <= time.monotonic() - started < 2.0  # one after another: 16 x 0.2 s = 3.2 s


@pytest.mark.parametrize(
    ("status", "code"),
    [(500, "unexpected_error"), (408, "request_timeout"), (503, "sandbox_fault")],
)
def test_transient_status_faults_keep_the_session(api, control, status, code):
    session = paused(control)["session"]
    control("POST", "/faults", {"mode": "status", "status": status, "count": 2})
    assert [outcome(resume(api, session)) for _ in range(2)] == [(status, code)] * 2
    assert resume(api, session).status_code == 200


def test_final_and_throttling_faults(api, control):
    session = paused(control)["session"]
    control("POST", "/faults", {"mode": "status", "status": 429, "retry_after": 7})
    throttled = resume(api, session)  # not a status Belvo's spec lists: named as the sandbox's
    assert (outcome(throttled), throttled.headers["Retry-After"]) == ((429, "sandbox_fault"), "7")
    control("POST", "/faults", {"mode": "status", "status": 403})
    assert outcome(resume(api, session)) == (403, "access_to_resource_denied")
    control("POST", "/faults", {"mode": "status", "status": 400})
    assert outcome(resume(api, session)) == (400, "institution_down")
    assert outcome(resume(api, session)) == (400, "session_expired")


BROKEN = (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)


@pytest.mark.parametrize(
    ("fault", "status"),
    [({"mode": "drop"}, None), ({"mode": "hang", "delay_seconds": 0.2}, None), ({"mode": "truncated"}, 200)],
)
def test_broken_connections_leave_the_session_open(api, control, fault, status):
    session = paused(control)["session"]
    control("POST", "/faults", fault)
    with pytest.raises(requests.exceptions.ConnectionError if status is None else BROKEN):
        resume(api, session)
    assert resume(api, session).status_code == 200
    first, _ = control("GET", f"/calls?session={session}").json()
    assert (first["fault"], first["status"]) == (fault["mode"], status)


def test_processed_then_dropped_consumes_the_session(api, control):
    session = paused(control)["session"]
    control("POST", "/faults", {"mode": "drop", "process": True})
    with pytest.raises(requests.exceptions.ConnectionError):
        resume(api, session)
    assert outcome(resume(api, session)) == (400, "session_expired")


def test_garbage_and_slow_answers(api, control):
    control("POST", "/faults", {"mode": "html", "match": "register", "status": 502})
    control("POST", "/faults", {"mode": "bad_shape", "match": "any"})
    control("POST", "/faults", {"mode": "delay", "delay_seconds": 0.3, "match": "any"})
    html = register(api, "user_valid", "pass_valid")
    assert html.status_code == 502 and html.headers["Content-Type"].startswith("text/html")
    assert html.text.startswith("<html>")
    assert api("GET", "/api/").json() == {"unexpected": True}
    started = time.monotonic()
    assert api("GET", "/api/").status_code == 200
    assert time.monotonic() - started >= 0.3
    assert control("GET", "/faults").json() == []
    assert control("POST", "/faults", {"mode": "explode"}).status_code == 400


def test_calls_log_and_reset(api, control):
    api("POST", "/api/accounts/", auth=("x", "y"), link="l", token="1")
    [call] = control("GET", "/calls?kind=retrieve").json()
    assert (call["auth_ok"], call["status"], call["has_token"]) == (False, 401, True)
    assert (call["resource"], call["body_keys"]) == ("accounts", ["link", "token"])
    control("POST", "/reset")
    assert control("GET", "/calls").json() == []
    assert control("GET", "/health").json() == {"status": "ok"}
