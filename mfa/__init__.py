"""The domain core shared by the web (app/) and the worker (worker/): no web framework, no RQ worker.

settings    Settings.from_env(), the one place the environment is read
clock       now_ms(), the wall clock every deadline is measured on
session     MfaSession, its statuses, the one codec of its Redis hash, the expiry rule
pause       Belvo's HTTP 428 "token required" body
store       SessionStore: the state machine, every transition one atomic Redis operation
            (transitions.lua holds the scripts, scripts.py calls them by name)
dispatch    the web/worker contract: job names, and the Dispatcher that enqueues them
belvo       BelvoClient: Belvo's HTTP API
outcomes    what each Belvo answer means for a step, and the retry policy
registration  a link registered once at Belvo: after an uncertain attempt, find and adopt its link
steps       one upstream call for one step: claim, call, record
leases      CallLeases: one thread keeps the leases of all of a process's calls in flight alive
links       Belvo's webhooks about links, recorded once each (LinkEvents)
sealing     public-key sealing at rest: tokens and credentials for the worker, results for the web
nesting     how deeply JSON may nest (request bodies, stored challenges)
errors      the domain's named errors
logs        one JSON object per log line, with the request, session, step and attempt it concerns
metrics     every Prometheus family the core counts, and the hooks that count them
backlog     the queue, retries, leases and live workers, read from Redis when Prometheus scrapes
tracing     OpenTelemetry spans (off unless OTEL_* asks), and the context a job carries
"""
