"""The bodies the service takes for Belvo, validated as Belvo's spec states them: a mistake Belvo would
refuse is a 422 naming the field before anything is stored, never a failed session later."""

from __future__ import annotations

import pytest

LINK = "8848bd0c-9c7e-4f53-a732-ec896b11d4c4"
REGISTER = {"institution": "erebor_mx_retail", "username": "ana", "password": "S3cret-pw-zz"}


def _refused(r, *fields: str) -> list[dict]:
    assert r.status_code == 422, r.text
    errors = r.json()["errors"]
    assert {e["field"] for e in errors} == set(fields), errors
    assert "S3cret-pw-zz" not in r.text and "111111" not in r.text  # inputs are never echoed
    return errors


@pytest.mark.parametrize(
    ("change", "fields"),
    [
        ({"username": None}, {"username"}),
        ({"institution": "Bad Name"}, {"institution"}),
        ({"institution": "erebor"}, {"institution"}),  # the spec's pattern: name_country_kind
        ({"external_id": "ab"}, {"external_id"}),  # the spec: at least three characters
        ({"access_mode": "sometimes"}, {"access_mode"}),
        ({"credentials_storage": "forever"}, {"credentials_storage"}),
        ({"stale_in": "1y"}, {"stale_in"}),
        ({"fetch_historical": "yes"}, {"fetch_historical"}),
        ({"token": "111111"}, {"token"}),  # MFA goes through the session
        ({"save_data": True}, {"save_data"}),  # not a register field
        ({"bad": 1}, {"bad"}),
    ],
)
def test_register_refuses_what_belvos_spec_refuses(api, change, fields):
    body = {k: v for k, v in {**REGISTER, **change}.items() if v is not None}
    _refused(api.request("POST", "/v1/links", json=body), *fields)


@pytest.mark.parametrize(
    "change",
    [
        {"certificate": "Y2VydA=="},  # certificate without private_key
        {"private_key": "a2V5"},
        {"credentials_storage": "nostore"},  # a recurrent link (the default) must store its credentials
        {"credentials_storage": "30d", "access_mode": "recurrent"},
    ],
)
def test_register_refuses_field_combinations_belvo_refuses(api, change):
    _refused(api.request("POST", "/v1/links", json={**REGISTER, **change}), "body")


@pytest.mark.parametrize(
    "change",
    [
        {"password": None},  # the spec: not every institution needs one
        {"certificate": "Y2VydA==", "private_key": "a2V5"},
        {"credentials_storage": "nostore", "access_mode": "single"},
        {"credentials_storage": "store"},
        {"username2": "x", "username3": "y", "password2": "z", "fetch_resources": ["ACCOUNTS"]},
    ],
)
def test_register_accepts_every_field_of_belvos_register_body(api, change):
    body = {k: v for k, v in {**REGISTER, **change}.items() if v is not None}
    assert api.request("POST", "/v1/links", json=body).status_code == 202


def test_update_takes_belvos_update_body_and_refuses_a_token(api):
    path = f"/v1/links/{LINK}/update"
    _refused(api.request("POST", path, json={}), "password")
    _refused(api.request("POST", path, json={"password": "S3cret-pw-zz", "token": "111111"}), "token")
    _refused(api.request("POST", path, json={"password": "S3cret-pw-zz", "username": "ana"}), "username")
    _refused(api.request("POST", path, json={"password": "S3cret-pw-zz", "certificate": "Y2VydA=="}), "body")
    r = api.request("POST", "/v1/links/not-a-link/update", json={"password": "S3cret-pw-zz"})
    assert (r.status_code, r.json()["code"]) == (404, "link_not_found")
    assert api.request("POST", path, credential=None, json={"password": "x"}).status_code == 401


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"resource": "links"}, {"resource"}),
        ({"resource": "statements"}, {"resource"}),
        ({"resource": "accounts", "link": "not-a-uuid"}, {"link"}),
        ({"resource": "accounts", "date_from": "2026-01-01"}, {"date_from"}),  # accounts take no dates
        ({"resource": "accounts", "token": "111111"}, {"token"}),
        ({"resource": "accounts", "save_data": "no"}, {"save_data"}),
        ({"resource": "transactions"}, {"date_from", "date_to"}),  # the spec requires both
        ({"resource": "balances", "date_from": "2026-01-01"}, {"date_to"}),
        ({"resource": "transactions", "date_from": "2026-02-01", "date_to": "2026-01-01"}, {"date_to"}),
        ({"resource": "transactions", "date_from": 1767225600, "date_to": "2026-01-31"}, {"date_from"}),
        ({"resource": "invoices", "date_from": "2025-01-01", "date_to": "2025-12-31"}, {"type"}),
        (
            {"resource": "invoices", "date_from": "2025-01-01", "date_to": "2026-01-02", "type": "INFLOW"},
            {"date_to"},  # more than 365 days
        ),
        ({"resource": "incomes", "date_from": "2025-01-01"}, {"date_to"}),  # both or neither
        ({"resource": "incomes", "date_to": "2025-06-01"}, {"date_to"}),
        (
            {"resource": "incomes", "date_from": "2025-01-01", "date_to": "2025-02-01"},
            {"date_to"},
        ),  # < 90 days
        ({"resource": "incomes", "allowed_income_types": ["SALARY", "LOTTERY"]}, {"allowed_income_types.1"}),
        ({"resource": "recurring-expenses", "date_from": "2025-01-01"}, {"date_to"}),
        ({"resource": "employment-records", "attach_pdf": "yes"}, {"attach_pdf"}),
        ({"resource": "investments/portfolios", "account": LINK}, {"account"}),
    ],
)
def test_a_retrieval_is_checked_as_its_resource_is_by_belvo(api, body, fields):
    _refused(api.request("POST", "/v1/retrievals", json={"link": LINK, **body}), *fields)


@pytest.mark.parametrize(
    "body",
    [
        {"resource": "accounts", "save_data": False},
        {"resource": "transactions", "date_from": "2026-01-01", "date_to": "2026-01-31", "account": LINK},
        {"resource": "balances", "date_from": "2026-01-01", "date_to": "2026-01-01"},
        {"resource": "invoices", "date_from": "2025-01-01", "date_to": "2026-01-01", "type": "OUTFLOW"},
        {"resource": "incomes"},
        {
            "resource": "incomes",
            "date_from": "2025-01-01",
            "date_to": "2025-04-01",
            "minimum_confidence_level": "HIGH",
        },
        {"resource": "recurring-expenses", "date_from": "2025-01-01", "date_to": "2025-01-02"},
        {"resource": "risk-insights"},
        {"resource": "owners", "external_ref": "order-1"},
        {"resource": "employment-records", "attach_pdf": True},
        {"resource": "investments/portfolios"},
    ],
)
def test_a_retrieval_belvo_would_take_is_accepted(api, body):
    r = api.request("POST", "/v1/retrievals", json={"link": LINK, **body})
    assert r.status_code == 202, r.text
    assert r.json()["resource"] == body["resource"]
