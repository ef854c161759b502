"""The prose of RESULTS.md: how each figure is measured, what to change where one misses, and scaling."""

from __future__ import annotations

HOW = """\
- **Configuration.** As the README recommends: `WEB_CONCURRENCY=2` gevent workers
  (`app.server.DeadlineWorker`, a listening socket each: `reuse_port`; the defaults of
  `gunicorn.conf.py`), Redis with AOF, and the worker as the
  Procfile runs it (`python -m worker`: an `rq.SimpleWorker` subclass running up to `WORKER_CONCURRENCY`
  jobs at once in pooled threads, plus the sweeper and lease threads); gunicorn with
  `preload_app = True`; redis-py with `hiredis` (requirements.txt).
- **HTTP (the three requests/s figures and their p99).** The service (`app:create_app()`) and a bare
  Flask baseline (`bench/baseline_app.py`) run side by side under gunicorn with the repository's
  `gunicorn.conf.py` and its defaults ({web}), on one shared redis-server (AOF, fsync every second,
  as docker-compose.yml runs it), with
  `RATE_LIMIT_PER_MINUTE=0`, `SESSION_RATE_LIMIT_PER_MINUTE=0`, `AUTH_FAILURE_LIMIT_PER_MINUTE=0`,
  `WEB_ACCESS_LOG=0`, `LOG_LEVEL=INFO`: no rate limit, because each budget that is on costs every `/v1`
  request one more script round trip (about 0.15 ms of server CPU, about 15% of a GET), which the
  baseline does not make.
  Load: `wrk -t2 -c{conns} -d{seconds}s --latency -s bench/wrk.lua` over loopback; {rounds} round(s) per
  side, alternating which side goes first; each side's figure is its best round (the least disturbed
  by other load). A run with any non-2xx answer, socket error or timeout fails the benchmark.
  Server CPU per request is the gunicorn process tree's CPU time (/proc) over the requests answered.
  - GET: 1,000 awaiting sessions (seeded through `mfa.store.SessionStore.create`) read in rotation with
    their client secret; baseline: `HGETALL` of the same hashes, as JSON.
  - POST token: every request gets a fresh awaiting session (pre-seeded, split between wrk's threads,
    never reused). **No RQ worker runs during this phase, so the resume jobs just accumulate in the
    queue**: the figure is the web tier's alone. Baseline: one RQ `enqueue` of a no-op job.
  - POST sessions: the sandbox's 428 body with a fresh Belvo session id per request, backend API key;
    baseline: one `HSET` of a fresh hash.
- **Dispatch latency.** Idle system, one `python -m worker`, {dispatch_samples} sequential samples
  alternating with the baseline, 20 ms apart. Service: sandbox session, `POST /v1/sessions`,
  `POST .../token`; the clock runs from the 202 received to the sandbox's `at` for the PATCH (one
  machine clock). Baseline: `bench.noop.noop` enqueued on a queue of its own served by a second
  `python -m worker` (the same worker class); the clock runs from
  `enqueue()` returning to the time the job records on its first line.
- **Metrics and JSON logs, on against off** (`--only telemetry`). Three gunicorns of the service on one
  Redis, with the HTTP figures' settings: *on* with `METRICS_ENABLED=true`, `LOG_FORMAT=json`,
  `WEB_ACCESS_LOG=1` (the defaults: counters in `PROMETHEUS_MULTIPROC_DIR`, a JSON line per request);
  *off* with `METRICS_ENABLED=false`, `LOG_FORMAT=text`, `WEB_ACCESS_LOG=1` (nothing counted, the same
  lines as text, as before the service had metrics: gunicorn's access log wrote a text line per
  request); *bare* with `METRICS_ENABLED=false`, `LOG_FORMAT=text`, `WEB_ACCESS_LOG=0` (no line per
  request), reported beside so the line's own cost is known. Each round loads the three at the same
  time, each with a wrk of its own at half the HTTP figures' connections, so a drift in machine load hits
  all three alike; run one after another, one server's CPU per request moved 10-30% between 10 s rounds.
  {paired_rounds} rounds per figure; a figure's ratio is the median over the rounds of the round's
  ratio, and its value and baseline are each side's own median (so the ratio need not be their quotient).
  Dispatch latency: a web and a worker per side (on, off), each on a resume queue of its own, the
  dispatch samples alternating between them one at a time. Tracing is off in all, as by default.
  Target: on >= 0.95x off.
- **Webhooks on against off** (`--only webhooks`). Two gunicorns and two workers, *off* (no destination)
  and *on* (`WEBHOOK_URL` at a receiver on loopback), each on a resume queue of its own. Create
  throughput: {paired_rounds} paired rounds in which both are loaded at the same time, half the
  connections each, no worker running (the events wait in the outbox); figures as for the telemetry
  rows. Dispatch: samples alternating between the two. Memory: a Redis of its own per side.
- **Resume throughput.** Sandbox `latency_ms=2000`: every call takes 2 s. Setups: one `python -m worker`
  at `WORKER_CONCURRENCY` = 1, 8, 32 and 128 (ideal: concurrency / 2 s), then today's model, N processes
  at concurrency 1 for N = 8, 32 and 128 (ideal: N / 2 s). Each setup gets 256 sessions, or 16 rounds of
  calls where that is fewer (16 sessions at concurrency 1: 256 calls one at a time would take 8.5
  minutes to say the same). The sessions are made through the sandbox and the API first; then every
  token is POSTed at once by 8 concurrent clients; the clock runs from the first POST to the latest
  final `updated_at`. Worker CPU per job is the worker processes' CPU over the jobs (at concurrency 1
  it includes the worker's idle polling over a long run). The row at concurrency 8 runs under py-spy.
- **Slow clients.** The service alone under gunicorn (its defaults: header deadline 5 s, body deadline
  10 s), the GET load above, {rounds} round(s) alone and {rounds} beside 200 connections that each send
  `GET /healthz HTTP/1.1` and `Host:`, then one header line every 2 s, and connect again as soon as the
  server hangs up on them (at the header deadline), so 200 are held throughout; how many were held is
  sampled every 0.2 s. Targets against the same run alone: requests/s at least 0.8x, p99 at most 2x.
- **Live streams.** The service, one `python -m worker` and the sandbox; 1,000 streams
  (`GET /v1/sessions/{{id}}/stream`, HTTP/1.1, one connection each) held by an asyncio client in the
  benchmark process, opened 100 at a time: the sessions of all but a sample are seeded, the sample's
  are sandbox 428s stored through the API. With every stream open (each has sent its first event), the
  sample's tokens are submitted one every 50 ms; the worker resumes each at the sandbox and commits
  `succeeded`. Latency: the event's arrival at the client (`time.time()` when its block is parsed) minus
  the session's `updated_at` (the committing process's `now`, one machine clock, millisecond
  resolution). The GET
  load runs once alone before the streams open, once beside them (and, with more rounds, beside them
  then alone after they are closed; a closed stream's server side ends at its next heartbeat).
  Heartbeats at the default 15 s. Memory: RSS of the gunicorn tree before and after the streams open.
- **Redis memory per waiting session.** A redis-server of its own, `FLUSHALL`, `INFO memory`
  `used_memory` before and after storing 10,000 and then (in total) 100,000 sessions with
  `SessionStore.create`: the hash, the Belvo-session index key, the expiry zset entry, and the TTLs
  on both keys; the growth divided by the count.
- **Worker memory.** PSS (`/proc/<pid>/smaps_rollup`: shared pages counted by share) of every worker
  process of a setup, summed, sampled every 0.2 s through its run (every N/100 s for N processes); the
  figure is the peak, i.e. the processes with their calls in flight. Per call in flight: the growth
  from concurrency 1 to the highest concurrency, divided by the extra calls.
- **What-if** (Redis configuration only, nothing in the code): `CONFIG SET hash-max-listpack-value 256`
  (`hash-max-ziplist-value` before Redis 7), the setting docker-compose.yml runs Redis with.
"""

BEFORE_AFTER = """\
The first full run (commit f136143, kept in bench/before/) missed eight targets: token and create
requests/s, dispatch p50, resume throughput at N = 1, 4 and 16, and Redis memory at both sizes. What
its profiles showed, and what changed:

- **Worker: a fork and a fresh import per job.** RQ's forking `Worker` started a work horse per job,
  which imported `worker.jobs` (and `requests`) again and built a new Belvo client: about 87 ms of
  CPU per job, most of it the import machinery. `worker/__main__.py` now imports the jobs and builds
  their context once, and runs them in-process (`rq.SimpleWorker`); crash safety comes from the call
  lease and the failure callback, which never relied on the fork (tests/test_faults.py).
- **Token POST read the session twice.** The route authorized with a full `HGETALL`, then the store
  read it again under `WATCH`. The store now checks only `status` and `step` under `WATCH` (a step's
  other fields never change while it awaits its token) and the two `HSET`s are one.
- **Redis reply parsing in Python.** `hiredis` is now a runtime dependency: redis-py parses replies
  in C.
- **Imports after worker recycling.** `gunicorn.conf.py` sets `preload_app = True`: a worker recycled
  by `max_requests` forks from a master that has the app loaded.
- **Create sent and stored empty fields.** New session hashes leave out empty and zero fields (the
  scripts and `from_hash` read a missing field as empty); timestamps are formatted with
  `time.strftime` instead of `datetime`; the challenge is stored as compact JSON."""

RECOMMEND = {
    "get": """\
**What the gap is, and what is left.** Both sides run on the same gevent worker and make one `HGETALL`
through redis-py. What the service adds, by the tables above, is authorizing the read (Bearer parsing,
the client secret's SHA-256 and constant-time compare, `MfaSession.from_record`), the long-poll
arguments, the audience's view of the session and a larger JSON body, then the security headers, the
request-id hook and the metrics counters: no single hot spot. The 0.9x target was set when both sides
ran on gthread workers, where the baseline's request cost about 0.85 ms of server CPU; on gevent the
bare baseline costs about 0.6 ms while the service's GET costs what it did on gthread (about 0.95 ms,
commit 5a5424a against this one, back to back on this machine), so the ratio now measures the route's
own work against an almost empty one. Changed: the security headers are added in one pass over the
answer's headers (a `setdefault` each scanned them and raised inside: 22 to 6 us in isolation), a read
without a query string skips parsing one, and a fresh request id comes from `secrets.token_hex` (3.3 to
0.7 us); `python -m bench.versus 5a5424a` sets this GET against that commit's, on its gthread workers.""",
    "token": """\
**What the gap is, and what stays.** Four Redis round trips where the baseline makes one: the
principal's `HGETALL` (to authorize the request and to answer it), then `WATCH`, an `HMGET` of status and
step, and one MULTI/EXEC with the state change, the sealed token, the change-feed event and RQ's
enqueue. The transaction is what makes one submission per step exact, and it cannot shrink to a script:
RQ's enqueue cannot run inside Lua, and a script followed by a separate enqueue could lose the job
between the two. Under gevent a round trip costs more server CPU than on threads: before each use of a
pooled connection redis-py checks it for stray bytes with `poll`, which gevent makes cooperative (about
0.035 ms a check, `ConnectionPool.get_connection` in the tables), and every socket call goes through the
event loop. The token is sealed to the worker's public key first (a PyNaCl sealed box, about 0.07 ms
in isolation). Left: authorizing from a read made under `WATCH` (route and store sharing one pipeline)
would save one round trip, about 0.2 ms, but only with the rate limits off: with them on, the limiter
reads the principal before the view runs.""",
    "create": """\
**What the gap is, and what stays.** The baseline stores two fields without reading the request body.
The service reads and validates the 428 body (`read_json`, `parse_body`: pydantic), compares the API
key, draws and hashes a client secret, runs one script that writes the hash, the Belvo-session index,
the expiry entry and the change-feed event (the largest single part, about 0.25 ms), and answers with
the session as JSON. The security headers now cost what they do for GET, above.""",
    "worker": """\
**What changed, and what is left.** A worker process now runs up to `WORKER_CONCURRENCY` jobs at once in
pooled threads (worker/resume_worker.py), so throughput follows calls in flight / Belvo's latency
instead of processes / latency, and a call in flight costs a thread and two pooled connections instead
of a process. Each job still goes through RQ's reliable dequeue and bookkeeping; the loop that dequeues
makes only the round trips it must (BLMOVE and the job's HGETALL): RQ's worker heartbeat and state
are written when due rather than around every job, and the execution record is made in the job's own
thread. All the calls of a process share one core (the GIL): at about 6 ms of worker CPU per call,
one process does about 80 calls/s at half a core, so past that add processes, not concurrency
(README, Deploy). On this 2-core machine the web tier, the sandbox (a thread per call), Redis and the
benchmark's own clients share the cores with the worker: where a row falls short of its ideal, the
machine-busy column says whether the machine, rather than the worker, was the limit.""",
    "memory": """\
**Left to change.** New session hashes leave out empty fields, which brings the default layout under
the target. Redis still stores each hash as a full hash table, because the challenge JSON is longer
than `hash-max-listpack-value` (64 bytes); `hash-max-listpack-value 256`, as docker-compose.yml runs
Redis, packs it as a listpack at about half the memory (the what-if rows).""",
}

SCALING = """\
What more hosts share, and where the first limit is:

- **Web tier (the three requests/s figures).** gunicorn processes share nothing but Redis, so
  requests/s grows with web hosts (cores) until Redis saturates. A GET is one Redis command; a token
  POST about nine (HGETALL, WATCH, HMGET, MULTI, HSET, SET, RQ's enqueue, EXEC); a create one
  script with four writes. One Redis thread does on the order of 100,000 such commands per second on
  one core, so Redis's limit arrives near ten thousand token POSTs per second, far beyond a few web
  hosts. First limit: **web CPU** (Python per request, about {get_cpu} ms per GET here), then
  Redis's single core.
- **Dispatch latency** does not change with hosts: it is per job (the queue pop is a blocking BLMOVE,
  immediate) plus RQ's bookkeeping before the job starts. It grows only once every worker is busy.
- **Resume throughput** is calls in flight / Belvo's latency while each host has the CPU for the per-call
  cost ({job_cpu} ms of worker CPU per job at concurrency {top_concurrency} here): the first limit is
  **worker CPU per host** (one core per process, the GIL), then Belvo's rate limits. Shared across hosts:
  Redis (RQ's ~12 commands per job plus the service's two scripts) and Belvo itself. One queue is one
  Redis list, good for thousands of jobs per second.
- **Redis memory** is shared by every host: sessions x bytes per session ({session_bytes} B measured,
  so about {per_million} GB per million waiting sessions; {packed_bytes} B with compact hashes), plus
  RQ's job hashes while jobs wait. One Redis (not Cluster: the scripts build keys from a prefix) bounds
  it; memory, not CPU, is the first Redis limit for long-waiting sessions.
- **Worker memory** is per host: about {worker_pss} MiB of PSS per worker process, and a little per
  call in flight ({top_pss} MiB for one process at concurrency {top_concurrency}), where today's model
  needed a process per call in flight.
"""
