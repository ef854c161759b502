-- The session state machine's atomic transitions, loaded and called by mfa/scripts.py.
--
-- Each section "-- @name(param, ...)" is one script. mfa/scripts.py prepends to each:
--   the generated tables F (hash field names, from mfa.session.RecordField), S (statuses),
--   CALLING (the statuses with an upstream call to make or in flight) and OUTCOME (the outcomes the
--   state machine records by itself, as JSON), the outbox's names and its library (mfa/outbox.lua:
--   add_webhook), then the prelude below, then one local per parameter
--   (`local step, attempt = ARGV[5], ARGV[6]`), so scripts and their callers share names, not positions.
-- KEYS: the session's keys, mfa.keys.SessionKeys: H hash, T MFA token, EXP expiry zset,
--       LEASES leases zset, CREDS sealed credentials, RETRIES retries zset, EVENTS change log,
--       RESULT the stored result of a succeeded session.
-- ARGV 1-4, every script: id, now (ms), retention (ms), Belvo-session key prefix.
-- @prelude
local H, T, EXP, LEASES, CREDS, RETRIES, EVENTS, RESULT =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local id, now, retention, belvo_prefix = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]

local function get(field)
  return redis.call('HGET', H, field)
end

local function calling(status)
  return status ~= nil and status ~= false and CALLING[status] == true
end

-- A change the session's readers can see: a new version, stamped now. Call emit() once it is complete.
local function touch(...)
  redis.call('HINCRBY', H, F.version, 1)
  redis.call('HSET', H, F.updated_at, now, ...)
end

-- The record as readers may see it: field/value pairs, SNAPSHOT_EXCLUDED left out.
local function snapshot()
  local record = redis.call('HGETALL', H)
  local pairs_ = {}
  for i = 1, #record, 2 do
    if not SNAPSHOT_EXCLUDED[record[i]] then
      pairs_[#pairs_ + 1] = record[i]
      pairs_[#pairs_ + 1] = record[i + 1]
    end
  end
  return pairs_
end

-- The backend's webhook event for the record as it now is, when the session has destinations and its
-- status makes an event (mfa.webhooks.EVENT_BY_STATUS): written by the script that made the change.
local function notify(snap)
  local destinations, status = get(F.webhooks), get(F.status)
  if not destinations or not EVENT_BY_STATUS[status] then
    return
  end
  local record = {}
  snap = snap or snapshot()
  for i = 1, #snap, 2 do
    record[snap[i]] = snap[i + 1]
  end
  local version = get(F.version)
  local event = 'evt_' .. (string.gsub(id, '^mfa_', '')) .. '_' .. version
  add_webhook(event, EVENT_BY_STATUS[status], id, version, get(F.step), now, 'record', cjson.encode(record),
    destinations, now, retention)
end

-- Log the record as it now is (mfa:events:{id}, entry 0-{version}, expiring with the record), announce
-- it, and write its webhook event; the transaction that changed the record writes these, or none happens.
local function emit()
  local snap = snapshot()
  local version = get(F.version)
  redis.call('XADD', EVENTS, 'MAXLEN', '~', EVENTS_KEPT, '0-' .. version, unpack(snap))
  redis.call('PEXPIRE', EVENTS, redis.call('PTTL', H))
  redis.call('PUBLISH', CHANGES_CHANNEL, id .. ' ' .. version)
  notify(snap)
end

-- List the session under its external_ref (newest REFS_KEPT), the list living as long as its last session.
local function keep_ref(ttl)
  local ref = get(F.external_ref)
  if not ref or ref == '' then
    return
  end
  local key = REF_PREFIX .. ref
  redis.call('ZADD', key, get(F.created_at), id)
  redis.call('ZREMRANGEBYRANK', key, 0, -(REFS_KEPT + 1))
  if redis.call('PTTL', key) < tonumber(ttl) then
    redis.call('PEXPIRE', key, ttl)
  end
end

-- End the session for good: forget its secrets, leave the work lists, keep the record for `retention`.
local function close(status, outcome)
  touch(F.status, status, F.outcome, outcome, F.in_flight, '0')
  redis.call('DEL', T, CREDS)
  redis.call('ZREM', EXP, id)
  redis.call('ZREM', LEASES, id)
  redis.call('ZREM', RETRIES, id)
  redis.call('PEXPIRE', H, retention)
  local belvo = get(F.belvo_session)
  if belvo and belvo ~= '' then
    redis.call('PEXPIRE', belvo_prefix .. belvo, retention)
  end
  emit()
end

-- A step whose Belvo session is over: expired if its call was never tried, else failed (unavailable).
local function close_unanswered()
  if tonumber(get(F.attempts) or '0') > 0 then
    close(S.failed, OUTCOME.unavailable)
    return S.failed
  end
  close(S.expired, OUTCOME.expired)
  return S.expired
end

-- @create(belvo_session, expires_at, ttl, ...)
-- A session paused on a 428 the backend got; `...` is the record, field/value pairs. 0 on a duplicate.
-- Its first step's webhook event (session.awaiting_token, version 1) is written here too; creation is
-- not logged in EVENTS (the record is the first state).
if not redis.call('SET', belvo_prefix .. belvo_session, id, 'NX', 'PX', ttl) then
  return 0
end
redis.call('HSET', H, unpack(ARGV, VARARGS))
redis.call('PEXPIRE', H, ttl)
redis.call('ZADD', EXP, expires_at, id)
keep_ref(ttl)
notify()
return 1

-- @cancel()
-- awaiting_token -> cancelled. Returns {the status it has now, 1 if this call closed it else 0}.
local status = get(F.status)
if not status then
  return false
end
if status == S.awaiting_token then
  if now >= tonumber(get(F.expires_at)) then
    close(S.expired, OUTCOME.expired)
    return {S.expired, 1}
  end
  close(S.cancelled, OUTCOME.cancelled)
  return {S.cancelled, 1}
end
return {status, 0}

-- @expire_due()
-- Closes a session whose Belvo session (or first-call deadline) is over.
-- Returns {the status it has now, the status this call closed it from, or '' if it did not close it}.
local status = get(F.status)
if not status then
  redis.call('ZREM', EXP, id)
  redis.call('ZREM', LEASES, id)
  return false
end
local expires_at = tonumber(get(F.expires_at) or '0')
if status == S.awaiting_token then
  if now < expires_at then
    return {status, ''}
  end
  close(S.expired, OUTCOME.expired)
  return {S.expired, status}
elseif calling(status) then
  -- A call in flight ends through its own answer or its lease, never through the clock.
  if get(F.in_flight) == '1' or now < expires_at then
    return {status, ''}
  end
  return {close_unanswered(), status}
end
redis.call('ZREM', EXP, id)
return {status, ''}

-- @begin_call(step, lease_deadline, attempt)
-- Returns {verdict, token, attempt}; the verdicts are mfa.session.ClaimVerdict.
-- Only the job for the next attempt gets `go`: a duplicate or late job of any attempt is stale.
local status = get(F.status)
if not status then
  return {'gone'}
end
if not calling(status) or get(F.step) ~= step then
  return {'stale'}
end
if get(F.in_flight) == '1' then
  local lease = redis.call('ZSCORE', LEASES, id)
  if lease and tonumber(lease) > now then
    return {'busy'}
  end
  -- The previous attempt died mid-call: Belvo may have acted on it, so it is not repeated.
  close(S.failed, OUTCOME.unknown)
  return {'unknown'}
end
if tonumber(get(F.attempts) or '0') ~= tonumber(attempt) - 1 or redis.call('ZSCORE', RETRIES, id) then
  return {'stale'}
end
if now >= tonumber(get(F.expires_at)) then
  return {close_unanswered()}
end
local taken = redis.call('HINCRBY', H, F.attempts, 1)
redis.call('HSET', H, F.in_flight, '1')
redis.call('ZADD', LEASES, lease_deadline, id)
return {'go', redis.call('GET', T), taken}

-- @release_call(step, retry_at, uncertain)
-- Ends an attempt that will be retried; the sweeper enqueues the retry once it is due.
-- `uncertain` = '1': Belvo may have acted on the attempt (no answer, 408, 5xx); the step remembers it.
if not calling(get(F.status)) or get(F.step) ~= step or get(F.in_flight) ~= '1' then
  return 0
end
redis.call('HSET', H, F.in_flight, '0')
if uncertain == '1' then
  redis.call('HINCRBY', H, F.uncertain, 1)
end
redis.call('ZREM', LEASES, id)
redis.call('ZADD', RETRIES, retry_at, id)
return 1

-- @take_retry(step, attempt)
-- Takes a due retry off the list; 1 if this caller took it (and enqueues its job).
local due = redis.call('ZSCORE', RETRIES, id)
if not due or tonumber(due) > now then
  return 0
end
redis.call('ZREM', RETRIES, id)
local status = get(F.status)
if not status or not calling(status) or get(F.in_flight) == '1' or get(F.step) ~= step
    or tonumber(get(F.attempts) or '0') ~= tonumber(attempt) - 1 then
  return 0
end
return 1

-- @finish(step, status, outcome, result, link)
-- calling -> a final status with its outcome; 0 if the step had already ended. `result` (Belvo's body,
-- as stored: sealed or not) goes to its own key, never into the record or the change log; '' for none.
-- A non-empty `link` is the link the call registered, noted on the session as an MFA step would have.
if not calling(get(F.status)) or get(F.step) ~= step then
  return 0
end
if link ~= '' then
  redis.call('HSET', H, F.link, link)
end
close(status, outcome)
if result ~= '' then
  redis.call('SET', RESULT, result, 'PX', retention)
end
return 1

-- @next_step(step, belvo_session, challenge, expects_input, expires_at, ttl, link)
-- calling -> awaiting_token: a resume's 428 is the next step; the 428 of a first call (register,
-- retrieve, update) is step 1.
local status = get(F.status)
if not calling(status) or get(F.step) ~= step then
  return 0
end
local opened = tonumber(step)
if status == S.submitted then
  opened = opened + 1
end
redis.call('DEL', CREDS, T)
redis.call('HDEL', H, F.outcome)
touch(F.status, S.awaiting_token, F.step, opened, F.belvo_session, belvo_session, F.link, link,
  F.challenge, challenge, F.expects_input, expects_input, F.expires_at, expires_at,
  F.attempts, '0', F.uncertain, '0', F.in_flight, '0')
redis.call('ZREM', LEASES, id)
redis.call('ZADD', EXP, expires_at, id)
redis.call('PEXPIRE', H, ttl)
-- NX: never take over another session's index (Belvo reusing a session id would be its bug, not ours).
redis.call('SET', belvo_prefix .. belvo_session, id, 'NX', 'PX', ttl)
keep_ref(ttl)
emit()
return opened

-- @recover_lapsed()
-- Closes a session whose in-flight call outlived its lease (its worker died); 1 if it was closed.
local lease = redis.call('ZSCORE', LEASES, id)
if not calling(get(F.status)) or get(F.in_flight) ~= '1' then
  redis.call('ZREM', LEASES, id)
  return 0
end
if lease and tonumber(lease) > now then
  return 0
end
close(S.failed, OUTCOME.unknown)
return 1

-- @abort(step, attempt)
-- The job of (step, attempt) raised: close the step while that attempt is still the open one (outcome
-- unknown if its call is in flight, internal_error if it never claimed it). The late failure of an
-- earlier attempt's job, or of a job whose attempt was already released for a retry, changes nothing.
-- Returns the name of the OUTCOME it closed the step with, or 0.
if not calling(get(F.status)) or get(F.step) ~= step then
  return 0
end
local taken = tonumber(get(F.attempts) or '0')
if get(F.in_flight) == '1' then
  if taken ~= tonumber(attempt) then
    return 0
  end
  close(S.failed, OUTCOME.unknown)
  return 'unknown'
elseif taken == tonumber(attempt) - 1 and not redis.call('ZSCORE', RETRIES, id) then
  close(S.failed, OUTCOME.internal)
  return 'internal'
end
return 0

-- @index_ref(ttl)
-- Lists a session created in a MULTI (mfa.store.SessionStore.create) under its external_ref.
keep_ref(ttl)
return 1
