"""The browser-facing routes' answers: each page's own security headers (the API's stay strict), the
static files' types and CORS, WIDGET_FRAME_ANCESTORS and DEMO_PAGE, and the demo's backend route.

What the pages do in a browser is tested in Chromium: tests/system/browser/.
"""

from __future__ import annotations

import pytest

from mfa import logs
from mfa.errors import ConfigError
from tests.inprocess import InProcessApi
from tests.support import API_KEY, SERVICE_ENV

API_POLICY = "default-src 'none'; frame-ancestors 'none'"
SHOP = "https://shop.example"
LOCAL = "http://localhost:3000"


def directives(policy: str) -> dict[str, str]:
    return {part.split(" ", 1)[0]: part.split(" ", 1)[1] for part in policy.split("; ")}


def test_the_widget_is_framable_by_the_service_and_the_listed_origins_only(make_api):
    api = make_api(WIDGET_FRAME_ANCESTORS=f"{SHOP}, {LOCAL}")
    r = api.request("GET", "/widget", credential=None)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    policy = directives(r.headers["Content-Security-Policy"])
    assert policy["frame-ancestors"] == f"'self' {SHOP} {LOCAL}"
    assert policy["default-src"] == "'none'" and policy["script-src"] == "'self'"
    assert policy["connect-src"] == "'self'" and "unsafe" not in r.headers["Content-Security-Policy"]
    assert "X-Frame-Options" not in r.headers  # frame-ancestors decides; DENY would override nothing useful
    assert r.headers["Referrer-Policy"] == "no-referrer"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert f'data-parent-origins="{SHOP} {LOCAL}"' in r.text  # where the end state may be posted


def test_without_listed_origins_only_the_services_own_pages_frame_the_widget(api: InProcessApi):
    r = api.request("GET", "/widget", credential=None)
    assert directives(r.headers["Content-Security-Policy"])["frame-ancestors"] == "'self'"
    assert 'data-parent-origins=""' in r.text


def test_the_api_keeps_its_strict_policy_and_docs_is_not_framable(api: InProcessApi):
    for path in ("/healthz", "/openapi.json", "/v1/sessions/mfa_none"):
        r = api.request("GET", path)
        assert r.headers["Content-Security-Policy"] == API_POLICY, path
        assert r.headers["X-Frame-Options"] == "DENY", path
    docs = api.request("GET", "/docs", credential=None)
    assert docs.status_code == 200
    policy = directives(docs.headers["Content-Security-Policy"])
    assert policy["frame-ancestors"] == "'none'" and docs.headers["X-Frame-Options"] == "DENY"
    assert policy["script-src"] == "'self'" and "unsafe" not in docs.headers["Content-Security-Policy"]
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in docs.text and "//cdn" not in docs.text


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/static/mfa-client.js", "text/javascript; charset=utf-8"),
        ("/static/mfa-client.d.ts", "text/plain; charset=utf-8"),
        ("/static/widget/widget.css", "text/css; charset=utf-8"),
        ("/static/vendor/qrcode-generator/qrcode.mjs", "text/javascript; charset=utf-8"),
        ("/static/vendor/qrcode-generator/LICENSE", "text/plain; charset=utf-8"),
        ("/static/vendor/swagger-ui/NOTICE", "text/plain; charset=utf-8"),
    ],
)
def test_static_files_are_served_with_their_type_to_any_origin(
    api: InProcessApi, path: str, content_type: str
):
    r = api.request("GET", path, credential=None, headers={"Origin": SHOP})
    assert r.status_code == 200 and r.content
    assert r.headers["Content-Type"] == content_type
    assert r.headers["Access-Control-Allow-Origin"] == "*"  # a module import from another origin is CORS
    assert r.headers["Cache-Control"] == "no-cache" and r.headers["ETag"]
    again = api.request("GET", path, credential=None, headers={"If-None-Match": r.headers["ETag"]})
    assert again.status_code == 304
    for answer in (r, again):  # a file answer holds its file until the server closes it, as gunicorn does
        answer.raw.close()


@pytest.mark.parametrize(
    "path",
    ["/static/vendor/README.md", "/static/../__init__.py", "/static/%2e%2e/frontend.py", "/static/nope.js"],
)
def test_nothing_else_is_served_from_static(api: InProcessApi, path: str):
    r = api.request("GET", path, credential=None)
    assert r.status_code == 404 and r.headers["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize(
    "value", ["*", "https://shop.example/checkout", "shop.example", "https://*.shop.example"]
)
def test_a_frame_ancestor_that_is_not_an_origin_stops_start_up(make_api, value: str):
    with pytest.raises(ConfigError, match="WIDGET_FRAME_ANCESTORS"):
        make_api(WIDGET_FRAME_ANCESTORS=value)


def test_the_demo_is_off_unless_switched_on(api: InProcessApi):
    assert api.request("GET", "/", credential=None).status_code == 404
    assert (
        api.request("POST", "/demo/sessions", credential=None, json={"scenario": "numeric"}).status_code
        == 404
    )


def test_the_demo_needs_links_and_a_clear_switch(make_api):
    with pytest.raises(ConfigError, match="DEMO_PAGE"):
        make_api(DEMO_PAGE="true", SEALING_PUBLIC_KEY="", RESULT_PRIVATE_KEYS="", LINKS_ENABLED="auto")
    with pytest.raises(ConfigError, match="DEMO_PAGE"):
        make_api(DEMO_PAGE="maybe")


def test_the_demo_registers_a_sandbox_link_through_the_service_and_hands_out_no_key(make_api, sandbox):
    api = make_api(DEMO_PAGE="true")
    page = api.request("GET", "/", credential=None)
    assert page.status_code == 200 and API_KEY not in page.text
    assert directives(page.headers["Content-Security-Policy"])["frame-src"] == "'self'"

    r = api.request("POST", "/demo/sessions", credential=None, json={"scenario": "numeric"})
    assert r.status_code == 201, r.text
    started = r.json()
    assert set(started) == {"session", "secret"} and API_KEY not in r.text
    session = api.wait(started["session"], {"awaiting_token"})
    assert session["challenge"]["type"] == "numeric" and session["external_ref"] == "demo-numeric"
    assert api.get(started["session"], credential=started["secret"]).status_code == 200
    assert [c["body_keys"] for c in sandbox.calls(kind="register")]  # registered at the sandbox


def test_the_demos_inner_request_leaves_no_request_id_bound_after_it(make_api, sandbox):
    api = make_api(DEMO_PAGE="true")
    r = api.request("POST", "/demo/sessions", credential=None, json={"scenario": "numeric"})
    assert r.status_code == 201, r.text
    assert logs.current("request_id") is None  # a line logged after the request carries none


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({"Sec-Fetch-Site": "cross-site"}, {"scenario": "numeric"}, 403),
        ({}, None, 403),  # a form post, not JSON
        ({}, {"scenario": "password_reset"}, 422),
    ],
)
def test_the_demo_starts_sessions_for_its_own_page_only(make_api, headers, body, status):
    api = make_api(DEMO_PAGE="true")
    kw = {"json": body} if body is not None else {"data": {"scenario": "numeric"}}
    r = api.request("POST", "/demo/sessions", credential=None, headers=headers, **kw)
    assert r.status_code == status, r.text


def test_the_settings_default_to_no_frame_ancestors_and_no_demo():
    from mfa.settings import Settings

    settings = Settings.from_env(SERVICE_ENV)
    assert settings.widget_frame_ancestors == () and settings.demo_page is False


def test_a_client_of_another_origin_may_resume_a_stream_with_last_event_id(make_api):
    api = make_api(CORS_ORIGINS=SHOP)
    r = api.request(
        "OPTIONS",
        "/v1/sessions/mfa_any",
        credential=None,
        headers={
            "Origin": SHOP,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization, last-event-id",
        },
    )
    assert r.status_code == 200
    allowed = {h.strip().lower() for h in r.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "last-event-id"} <= allowed
