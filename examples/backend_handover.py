"""The backend's first hour: hand Belvo's 428 over to the MFA session service, with belvo-python.

Against `make dev` (it starts the service and the Belvo sandbox, and prints an API key):

    API_KEY=<the key make dev printed> .venv/bin/python examples/backend_handover.py

Against Belvo itself, set BELVO_URL, BELVO_SECRET_ID and BELVO_SECRET_PASSWORD (and use an institution
and credentials of yours); SERVICE_URL if the service is not on localhost:8000.

The backend calls Belvo with raise_exception=True. A 428 arrives as RequestError(status_code=428)
whose `detail` is Belvo's body: the backend posts it to POST /v1/sessions with the `resource` of the
call it made, and gives the session's client_secret to its frontend. The `resource` decides where the
service resumes: a 428 from Accounts.create must say "accounts". Left out, it means "links", and a data
call's session resumed as a link meets Belvo's session_expired (the outcome's message says so).
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from typing import Any

import requests
from belvo.client import Client
from belvo.exceptions import RequestError

SERVICE = os.environ.get("SERVICE_URL", "http://localhost:8000").rstrip("/")
API_KEY = os.environ.get("API_KEY", "")
BELVO_URL = os.environ.get("BELVO_URL", "http://localhost:8001")
BELVO_SECRET_ID = os.environ.get("BELVO_SECRET_ID", "sandbox-secret-id")
BELVO_SECRET_PASSWORD = os.environ.get("BELVO_SECRET_PASSWORD", "sandbox-secret-password")
FINAL = {"succeeded", "failed", "expired", "cancelled"}
# An MFA bank of the sandbox (not make dev's walk-through one, so both can run in one make dev).
INSTITUTION = os.environ.get("INSTITUTION", "heimdall_co_retail")
# What the user would type: Belvo's sandbox (and ours) completes a step with this code.
USER_CODE = os.environ.get("MFA_CODE", "111111")


def hand_over(exc: RequestError, resource: str) -> dict[str, Any]:
    """The backend: post Belvo's 428 to the service, naming the resource of the call that got it."""
    r = requests.post(
        f"{SERVICE}/v1/sessions",
        json={"token_required": exc.detail, "resource": resource},
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=10,
    )
    r.raise_for_status()
    return r.json()  # its `id` and `client_secret` go to the frontend


def frontend_completes(session: dict[str, Any], token: str) -> dict[str, Any]:
    """The frontend (here, for the demo): submit the user's token, then wait for the outcome."""
    auth = {"Authorization": f"Bearer {session['client_secret']}"}
    url = f"{SERVICE}/v1/sessions/{session['id']}"
    print(f"  challenge: {session['challenge']}")
    r = requests.post(
        f"{url}/token",
        json={"token": token},
        headers={**auth, "Idempotency-Key": str(uuid.uuid4())},
        timeout=10,
    )
    r.raise_for_status()
    deadline = time.monotonic() + 60
    while True:
        state = requests.get(url, headers=auth, timeout=10).json()
        if state["status"] in FINAL or time.monotonic() > deadline:
            return state
        time.sleep(0.25)


def outcome_for_backend(session_id: str) -> dict[str, Any]:
    """The backend reads the result with its API key (the frontend sees only the outcome's code)."""
    r = requests.get(
        f"{SERVICE}/v1/sessions/{session_id}", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10
    )
    r.raise_for_status()
    return r.json()


def through_the_service(call: Any, resource: str) -> Any:
    """Make a Belvo call; if the bank wants a token, hand the 428 over and return the resumed result."""
    try:
        return call()
    except RequestError as exc:
        if exc.status_code != 428:
            raise
        print(f"{resource}: Belvo answered 428; handing it over")
        session = hand_over(exc, resource)
        done = frontend_completes(session, USER_CODE)
        if done["status"] != "succeeded":
            raise SystemExit(f"{resource}: the session ended {done['status']}: {done['outcome']}") from None
        return outcome_for_backend(session["id"])["outcome"]["result"]


def main() -> int:
    """Register a link at an MFA bank, then read its accounts: both calls pause for a token."""
    if not API_KEY:
        print("Set API_KEY to the backend API key `make dev` printed.", file=sys.stderr)
        return 2
    belvo = Client(BELVO_SECRET_ID, BELVO_SECRET_PASSWORD, BELVO_URL)
    link = through_the_service(
        lambda: belvo.Links.create(INSTITUTION, "mfa_numeric", "numeric_code", raise_exception=True),
        "links",
    )
    print(f"link {link['id']}: {link['status']}")
    try:
        accounts = through_the_service(
            lambda: belvo.Accounts.create(link["id"], raise_exception=True), "accounts"
        )
        print(f"accounts: {len(accounts)} ({', '.join(a['name'] for a in accounts)})")
    finally:
        belvo.Links.delete(link["id"])  # Belvo refuses a second link for the same login: run it again freely
    return 0


if __name__ == "__main__":
    sys.exit(main())
