"""`make dev`: the whole service on this machine, with an embedded Redis and the Belvo sandbox.

Uses REDIS_URL and BELVO_BASE_URL (+ BELVO_SECRET_ID/PASSWORD) when set instead of starting its own.
Every fixed port must be free: a stack never attaches to a Redis, sandbox or web server it did not
start. Each run logs to a fresh folder, var/logs/<run>/ (var/logs/latest points at it). Ctrl-C stops
everything. The variables are listed in the README ("make dev").
"""

from __future__ import annotations

import os
import secrets
import signal
import sys
import time
from pathlib import Path

from devstack.processes import ROOT, PortTaken, Proc, start_redis, start_sandbox, start_web, start_worker
from mfa.sealing import new_key_pair

VAR = ROOT / "var"


def fresh_log_dir() -> Path:
    """var/logs/<timestamp>/ for this run, with var/logs/latest pointing at it."""
    logs = VAR / "logs" / time.strftime("%Y%m%d-%H%M%S")
    logs.mkdir(parents=True, exist_ok=True)
    latest = VAR / "logs" / "latest"
    latest.unlink(missing_ok=True)
    latest.symlink_to(logs.name)
    return logs


def walkthrough(
    url: str, api_key: str, sandbox_url: str | None, logs: Path, webhook_auth: str = "", demo: bool = True
) -> str:
    """The copy-paste tour printed at start-up: register a link that pauses for MFA, then finish it."""
    auth = f'-H "Authorization: Bearer {api_key}"'
    field = "python3 -c 'import sys,json; print(json.load(sys.stdin)[sys.argv[1]])'"
    creds = "mfa_numeric / numeric_code" if sandbox_url else "the end user's bank credentials"
    alt = (
        f"""
# Already holding a 428 your backend got from Belvo? Hand it over instead of step 1
# (with belvo-python: API_KEY={api_key} .venv/bin/python examples/backend_handover.py):
PAUSE=$(curl -s -X POST {sandbox_url}/_sandbox/sessions -d '{{"token_type":"numeric"}}')
curl -s {auth} {url}/v1/sessions -d "{{\\"token_required\\": $PAUSE}}"

# 5. Re-authentication: when the bank wants the user again, Belvo sends a LINK webhook to
#    {url}/v1/belvo/webhooks (here the sandbox sends it); the backend reads the link's events
#    and sends the credentials again, and steps 2-4 finish it.
LINK=$(curl -s -H "Authorization: Bearer $CS" {url}/v1/sessions/$ID | {field} link)
curl -s {sandbox_url}/_sandbox/webhooks -H 'Content-Type: application/json' -d "{{\\"link\\": \\"$LINK\\",
  \\"url\\": \\"{url}/v1/belvo/webhooks\\", \\"authorization\\": \\"{webhook_auth}\\"}}"
curl -s {auth} {url}/v1/links/$LINK/events
S=$(curl -s {auth} {url}/v1/links/$LINK/update -d '{{"password": "numeric_code"}}')
ID=$(echo "$S" | {field} id); CS=$(echo "$S" | {field} client_secret)
"""
        if sandbox_url
        else ""
    )
    pages = f"API reference: {url}/docs"
    if demo:
        pages = f"In a browser: {url}/ (the demo: a backend and the MFA widget)   {pages}"
    return f"""
MFA session service on {url}   (API key: {api_key})
OpenAPI document: {url}/openapi.json
{pages}

# 1. The backend asks the service to register a link ({creds}: the bank wants a token):
S=$(curl -s {auth} {url}/v1/links \\
     -d '{{"institution": "heimdall_mx_retail", "username": "mfa_numeric", "password": "numeric_code"}}')
ID=$(echo "$S" | {field} id); CS=$(echo "$S" | {field} client_secret)

# 2. The frontend, holding only the client secret, reads the challenge (status awaiting_token):
curl -s -H "Authorization: Bearer $CS" {url}/v1/sessions/$ID

# 3. ... and submits the user's token (111111 completes, 999999 asks for another step):
curl -s -H "Authorization: Bearer $CS" -H 'Content-Type: application/json' \\
     -H "Idempotency-Key: $(python3 -c 'import uuid; print(uuid.uuid4())')" \\
     {url}/v1/sessions/$ID/token -d '{{"token": "111111"}}'

# 4. The frontend sees the outcome (status succeeded); the backend's API key also sees Belvo's body,
#    the link, in outcome.result:
curl -s -H "Authorization: Bearer $CS" {url}/v1/sessions/$ID
curl -s {auth} {url}/v1/sessions/$ID
{alt}
Logs: {logs.relative_to(ROOT)}/*.log        Ctrl-C stops everything.
"""


def main() -> int:
    """Start every part, print the tour, wait for Ctrl-C or a child's death, stop everything."""
    logs = fresh_log_dir()
    procs: list[Proc] = []
    env = dict(os.environ)
    api_key = env.get("API_KEYS", "").split(",")[0].strip() or "dev_" + secrets.token_urlsafe(24)
    env.setdefault("API_KEYS", api_key)
    # Sealing keys for this run only (each process gets its own half: devstack/processes.py): tokens,
    # bank credentials and results sealed in development cannot be opened after it.
    if not any(env.get(name) for name in ("SEALING_PUBLIC_KEY", "SEALING_PRIVATE_KEYS")):
        sealing_private, sealing_public = new_key_pair()
        result_private, result_public = new_key_pair()
        env.update(
            SEALING_PUBLIC_KEY=sealing_public,
            SEALING_PRIVATE_KEYS=sealing_private,
            RESULT_PUBLIC_KEY=result_public,
            RESULT_PRIVATE_KEYS=result_private,
        )
    # What Belvo's dashboard would hold: the Authorization header its webhooks carry.
    env.setdefault("BELVO_WEBHOOK_AUTHORIZATION", "Bearer whk_" + secrets.token_urlsafe(24))
    env.setdefault("DEMO_PAGE", "true")  # the demo at / plays a backend with the API key: development only
    worker_env: dict[str, str] = {}
    try:
        if not env.get("REDIS_URL"):
            # Redis as in production: only the web's and the worker's ACL users, passwords for this run.
            redis = start_redis(
                VAR / "redis",
                logs,
                port=int(env.get("DEV_REDIS_PORT", "6390")),
                appendonly=True,
                port_variable="DEV_REDIS_PORT",
                passwords={role: secrets.token_urlsafe(24) for role in ("web", "worker")},
            )
            procs.append(redis)
            env["REDIS_URL"] = redis.extra["urls"]["web"]
            worker_env["REDIS_URL"] = redis.extra["urls"]["worker"]
        sandbox_url = None
        if not env.get("BELVO_BASE_URL"):
            env.setdefault("BELVO_SECRET_ID", "sandbox-secret-id")
            env.setdefault("BELVO_SECRET_PASSWORD", "sandbox-secret-password")
            sandbox = start_sandbox(
                logs,
                env["BELVO_SECRET_ID"],
                env["BELVO_SECRET_PASSWORD"],
                port=int(env.get("DEV_SANDBOX_PORT", "8001")),
                port_variable="DEV_SANDBOX_PORT",
            )
            procs.append(sandbox)
            env["BELVO_BASE_URL"] = sandbox_url = sandbox.url
        web = start_web(env, logs, port=int(env.get("PORT", "8000")), port_variable="PORT")
        procs.append(web)
        procs.append(start_worker({**env, **worker_env}, logs))
        demo = env["DEMO_PAGE"].strip().lower() in ("1", "true", "yes", "on")
        webhook_auth = env["BELVO_WEBHOOK_AUTHORIZATION"]
        print(walkthrough(web.url, api_key, sandbox_url, logs, webhook_auth, demo), flush=True)
        stop = {"now": False}
        signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
        while not stop["now"] and all(p.alive for p in procs):
            time.sleep(0.5)
        dead = [p.name for p in procs if not p.alive]
        if dead:
            print(f"stopping: {', '.join(dead)} exited (see {logs})", file=sys.stderr)
            return 1
        return 0
    except PortTaken as exc:
        print(f"make dev: {exc}", file=sys.stderr)
        return 1
    except (RuntimeError, TimeoutError) as exc:  # a part failed to start: say which, point at its log
        print(f"make dev: {str(exc).splitlines()[0]} (logs: {logs.relative_to(ROOT)})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for proc in reversed(procs):
            proc.stop()
        print("stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
