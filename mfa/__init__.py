"""The domain core shared by the web (app/) and the worker (worker/): no web framework, no RQ worker.

settings    Settings.from_env(), the one place the environment is read
clock       now_ms(), the wall clock every deadline is measured on
session     MfaSession, its statuses, the one codec of its Redis hash, the expiry rule
keys        every Redis key this service owns
pause       Belvo's HTTP 428 "token required" body
store       SessionStore: the state machine, every transition one atomic Redis operation
            (transitions.lua holds the scripts, scripts.py calls them by name); each change a reader
            can see is logged per session (mfa:events:{id}) and announced (mfa:changed)
feed, live  one subscription to those announcements per web process; streams and long-polls on it
dispatch    the web/worker contract: job names, and the Dispatcher that enqueues them
belvo       BelvoClient: Belvo's HTTP API
outcomes    what each Belvo answer means for a step, and the retry policy
registration  a link registered once at Belvo: after an uncertain attempt, find and adopt its link
steps       one upstream call for one step: claim, call, record
leases      CallLeases: one thread keeps the leases of all of a process's calls in flight alive
links       Belvo's webhooks about links, recorded once each (LinkEvents)
outbox      the webhook outbox, written by the same script as the change it announces (outbox.lua)
webhooks    our webhook events: types, payload, Standard Webhooks signing, the retry schedule
destinations  where a webhook may go (no SSRF), and the sender that checks it at connect time
delivery    one webhook attempt and what its answer means
lookups     sessions by the backend's external_ref, and cursor paging
sealing     public-key sealing at rest: tokens and credentials for the worker, results for the web
nesting     how deeply JSON may nest (request bodies, stored challenges)
connections Redis clients for each kind of process (ACL users, TLS, Sentinel)
acl         the Redis ACL users of web and worker, and the file that declares them
replicas    WAIT for replicas before an accepted submission is answered (REDIS_WAIT_REPLICAS)
errors      the domain's named errors
logs        one JSON object per log line, with the request, session, step and attempt it concerns
metrics     every Prometheus family the core counts, and the hooks that count them
backlog     the queue, retries, leases and live workers, read from Redis when Prometheus scrapes
tracing     OpenTelemetry spans (off unless OTEL_* asks), and the context a job carries
"""
