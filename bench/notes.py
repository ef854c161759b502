"""The prose of RESULTS.md: how each figure is measured, what to change where one misses, and scaling."""

from __future__ import annotations

HOW = """\
- **Configuration.** As the README recommends: `WEB_CONCURRENCY=2`, `WEB_THREADS=4` (gthread, the
  defaults of `gunicorn.conf.py`), Redis with AOF, and the worker as the Procfile runs it
  (`python -m worker`: at the time of writing a forking `rq.Worker` subclass and the sweeper).
- **HTTP (the three requests/s figures and their p99).** The service (`app:create_app()`) and a bare
  Flask baseline (`bench/baseline_app.py`) run side by side under gunicorn with the repository's
  `gunicorn.conf.py` and its defaults ({web}), on one shared redis-server (AOF, fsync every second,
  as docker-compose.yml runs it), with
  `RATE_LIMIT_PER_MINUTE=0`, `SESSION_RATE_LIMIT_PER_MINUTE=0`, `WEB_ACCESS_LOG=0`, `LOG_LEVEL=INFO`.
  Load: `wrk -t2 -c{conns} -d{seconds}s --latency -s bench/wrk.lua` over loopback; {rounds} round(s) per
  side, alternating which side goes first; each side's figure is its best round (the least disturbed
  by other load). A run with any non-2xx answer, socket error or timeout fails the benchmark.
  Server CPU per request is the gunicorn process tree's CPU time (/proc) over the requests answered.
  - GET: 1,000 awaiting sessions (seeded through `app.store.SessionStore.create`) read in rotation with
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
  `python -m worker` (same `rq.Worker` class, a forked work horse per job); the clock runs from
  `enqueue()` returning to the time the job records on its first line.
- **Resume throughput.** Sandbox `latency_ms=200`; N `python -m worker` processes; 20 x N sessions
  made through the sandbox and the API first; tokens POSTed by 8 concurrent clients; the clock runs
  from the first POST to the latest final `updated_at`. Worker CPU per job is the worker trees' CPU
  (work horses included: a reaped child's CPU moves to its parent's `cutime`) over the jobs.
- **Redis memory per waiting session.** A redis-server of its own, `FLUSHALL`, `INFO memory`
  `used_memory` before and after storing 10,000 and then (in total) 100,000 sessions with
  `SessionStore.create`: the hash, the Belvo-session index key, the expiry zset entry, and the TTLs
  on both keys; the growth divided by the count.
- **Worker memory.** `VmRSS` and PSS (`/proc/<pid>/smaps_rollup`; a forked child's shared pages are
  counted by share) of `python -m worker` and its long-lived children (RQ's scheduler process, for a
  worker that runs it and holds its lock); the work horses live only for a job.
- **What-ifs** (bench code only, nothing in app/ or worker/ changed): `bench/rq_worker.py` runs the
  service's own worker `main()` with `--preload` (import `worker.jobs` in the parent before RQ forks)
  or `--worker-class simple` (`rq.SimpleWorker`: the job runs in the worker process, no fork).
  Memory what-if: `CONFIG SET hash-max-listpack-value 256` (`hash-max-ziplist-value` before Redis 7).
"""

RECOMMEND = {
    "get": """\
**What I would change.** Worker recycling, where the import share above is more than a few percent:
`gunicorn.conf.py` sets `max_requests = 10000` (+ jitter), which at saturation restarts each worker
every ten seconds or so, and each new worker imports the whole app again (pydantic models, OpenAPI
schemas, `cryptography`). Set `preload_app = True` (workers then fork from a master that already
imported the app; `create_app` opens no connection, so forking is safe) or raise `max_requests`; the
`gunicorn --preload` rows measure the first. Then, in app/, the gap to a bare `HGETALL` app is the
sum of small steps around the same Redis call, no single hot spot: Bearer parsing and a SHA-256 of
the client secret, `MfaSession.from_hash` (a `json.loads` of the challenge), `public()` (three RFC 3339
timestamps through `datetime`), a larger JSON body, the request-id hook (`uuid4`), and six security
headers set one at a time through werkzeug's `Headers.setdefault` (each a linear scan). In order of
payoff per line:
(1) a `Response` subclass (`app.response_class`) whose default headers already hold the six constant
security headers, instead of the `after_request` loop; (2) format timestamps from the stored integers
with `time.strftime` (or store them pre-formatted) so `public()` does no `datetime` work; (3) keep the
challenge as stored JSON text and splice it into the answer rather than decode and re-encode it per read;
(4) add `hiredis` to requirements.txt: redis-py then parses replies in C (`_RESP3Parser` is the
largest own-time entry of the Redis path).""",
    "token": """\
**What I would change in app/.** Per request the service reads the whole 17-field hash twice
(`authorize_session`, then the WATCHed read in `SessionStore.submit_token`) and then runs MULTI/EXEC
with two HSETs, the token SET and RQ's enqueue (a job hash of a dozen fields, with `utcformat` dates):
the tables show the Redis client's packing and reply parsing (`PythonRespSerializer.pack`,
`_RESP3Parser`) as the largest own-time gap. (1) Authorize from the WATCHed read: read once, check the
credential, transition; that drops one round trip and one 17-field decode per request. (2) Merge the
two `HSET`s into one. (3) Add `hiredis` to requirements.txt: redis-py then parses replies in C. (4) In
gunicorn.conf.py, `preload_app = True` if the import share above is more than a few percent. The
enqueue itself is the baseline's cost and stays.""",
    "create": """\
**What I would change in app/.** `SessionStore.create` is the largest part: the `create` script gets
17 field/value pairs plus its own arguments as ARGV, about 40 values that redis-py encodes and packs in
Python (`Encoder.encode`, `PythonRespSerializer.pack`). Storing only the fields that carry information
(leave out empty `external_ref`, `outcome`, `save_data` and the zero `attempts`/`in_flight`, defaulted
where read) cuts that work and also the Redis memory per session (below). Then pydantic validation of
the 428 body (`parse_body`: validate with a `TypeAdapter` built once at import, and pass
`token_generation_data` through as the validated dict instead of `model_dump` it again); `public()`
formatting three timestamps through `datetime` (format from the stored integers); the six security
headers set one by one in an `after_request` hook (make them a `Response` subclass's defaults).""",
    "worker": """\
**What I would change in worker/.** RQ's `Worker` forks a work horse per job, and the horse imports
`worker.jobs` (and with it `requests`, `worker.belvo`, `worker.outcomes`) afresh every time, then builds
a new `WorkerContext` (settings, a `requests.Session`, registered scripts) and opens a new connection to
Belvo: the profile above shows the import machinery (`_find_and_load`, `<module> (requests/__init__.py)`)
taking most of the worker's CPU. On 2 cores that CPU, not the 200 ms of upstream latency, bounds
throughput: N workers reach N / 0.2 s only if a job costs well under 2 cores / (N / 0.2 s) of CPU,
i.e. under 25 ms at N = 16, together with what the web tier, Redis and the sandbox spend per session.
Changes, smallest first:
(1) `import worker.jobs` at the top of `worker/__main__.py`, so every fork inherits the module
(the `preload` rows measure exactly this change);
(2) build the `WorkerContext` in the parent as well (it opens no socket until used), so the horse only
connects;
(3) for this I/O-bound job, run `rq.SimpleWorker` (the `simple` rows: no fork at all, the Belvo
connection kept alive between jobs); crash isolation still comes from the call lease and the failure
callback, and job timeouts still work (SIGALRM in the worker's main thread);
(4) past that, 16 processes on 2 cores spend their CPU on RQ's own per-job bookkeeping (about a dozen
Redis commands per job) and on the sandbox's HTTP handling: more resumes per host then need
concurrency inside a process (threads or asyncio around the upstream call), not more processes.""",
    "memory": """\
**What I would change.** Each session hash holds the challenge as JSON longer than 64 bytes, so Redis
stores the hash as a full hash table (a dict entry, two strings and their headers per field) instead of
the compact listpack it uses while every value is at most `hash-max-listpack-value` (64) bytes. Either
raise `hash-max-listpack-value` to 256 in the Redis configuration (the what-if rows measure it; field
reads become a scan of ~17 short fields, which costs nothing measurable), or keep every value short in
app/store.py (store the challenge compactly or apart) and drop the empty fields (see POST /v1/sessions).""",
}

SCALING = """\
What more hosts share, and where the first limit is:

- **Web tier (the three requests/s figures).** gunicorn processes share nothing but Redis, so
  requests/s grows with web hosts (cores) until Redis saturates. A GET is one Redis command; a token
  POST about ten (HGETALL, WATCH, HGETALL, MULTI, two HSETs, SET, RQ's enqueue, EXEC); a create one
  script with four writes. One Redis thread does on the order of 100,000 such commands per second on
  one core, so Redis's limit arrives near ten thousand token POSTs per second, far beyond a few web
  hosts. First limit: **web CPU** (Python per request, about {get_cpu} ms per GET here), then
  Redis's single core.
- **Dispatch latency** does not change with hosts: it is per job (the queue pop is a blocking BLMOVE,
  immediate) plus the fork and the work horse's start-up. It grows only once every worker is busy.
- **Resume throughput** grows with worker processes only while each host has the CPU for their per-job
  cost ({job_cpu} ms of worker CPU per job as-is here): the first limit is **worker CPU per host**,
  not the 200 ms upstream latency. Shared across hosts: Redis (RQ's ~12 commands per job plus the
  service's two scripts) and Belvo itself (its rate limits). One queue is one Redis list, good for
  thousands of jobs per second.
- **Redis memory** is shared by every host: sessions x bytes per session ({session_bytes} B measured,
  so about {per_million} GB per million waiting sessions; {packed_bytes} B with compact hashes), plus
  RQ's job hashes while jobs wait. One Redis (not Cluster: the scripts build keys from a prefix) bounds
  it; memory, not CPU, is the first Redis limit for long-waiting sessions.
- **Worker memory** is per host: N x the RSS of one worker (about {worker_rss} MiB), less what forks
  share (PSS); the work horses are short-lived copy-on-write children.
"""
