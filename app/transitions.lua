-- The session state machine's atomic transitions, loaded by app/store.py.
-- Each section below "-- @name" is one script; the prelude is prepended to each.
-- KEYS: 1 session hash, 2 MFA token, 3 expiry zset, 4 leases zset, 5 encrypted bank credentials,
--       6 retries zset.
-- A "calling" session (submitted, registering, retrieving) has an upstream call to make or in flight.
-- ARGV: 1 id, 2 now (ms), 3 retention (ms), 4 Belvo-session key prefix, then the script's own.
-- @prelude
local H, T, EXP, LEASES, CREDS, RETRIES = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local id, now, retention, belvo_prefix = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]

local function get(field)
  return redis.call('HGET', H, field)
end

local function calling(status)
  return status == 'submitted' or status == 'registering' or status == 'retrieving'
end

-- End the session for good: forget its secrets, leave the work lists, keep the record for `retention`.
local function close(status, outcome)
  redis.call('HSET', H, 'status', status, 'outcome', outcome, 'updated_at', now, 'in_flight', '0')
  redis.call('DEL', T, CREDS)
  redis.call('ZREM', EXP, id)
  redis.call('ZREM', LEASES, id)
  redis.call('ZREM', RETRIES, id)
  redis.call('PEXPIRE', H, retention)
  local belvo = get('belvo_session')
  if belvo and belvo ~= '' then
    redis.call('PEXPIRE', belvo_prefix .. belvo, retention)
  end
end

-- A call that never got an answer in time: failed if Belvo was tried, else expired.
local function close_unanswered(expired_outcome, unavailable_outcome)
  if tonumber(get('attempts') or '0') > 0 then
    close('failed', unavailable_outcome)
    return 'failed'
  end
  close('expired', expired_outcome)
  return 'expired'
end

-- @create
-- ARGV: 5 belvo session, 6 expires_at, 7 ttl (ms), 8.. field/value pairs
if not redis.call('SET', belvo_prefix .. ARGV[5], id, 'NX', 'PX', ARGV[7]) then
  return 0
end
redis.call('HSET', H, unpack(ARGV, 8))
redis.call('PEXPIRE', H, ARGV[7])
redis.call('ZADD', EXP, ARGV[6], id)
return 1

-- @cancel
-- ARGV: 5 cancelled outcome, 6 expired outcome. Returns 'ok' when this call cancelled it, else its status.
local status = get('status')
if not status then
  return false
end
if status == 'awaiting_token' then
  if now >= tonumber(get('expires_at')) then
    close('expired', ARGV[6])
    return 'expired'
  end
  close('cancelled', ARGV[5])
  return 'ok'
end
return status

-- @expire_due
-- ARGV: 5 expired outcome, 6 unavailable outcome. Returns the status the session has afterwards.
local status = get('status')
if not status then
  redis.call('ZREM', EXP, id)
  redis.call('ZREM', LEASES, id)
  return false
end
local expires_at = tonumber(get('expires_at') or '0')
if status == 'awaiting_token' then
  if now < expires_at then
    return status
  end
  close('expired', ARGV[5])
  return 'expired'
elseif calling(status) then
  -- A call in flight ends through its own answer or its lease, never through the clock.
  if get('in_flight') == '1' or now < expires_at then
    return status
  end
  return close_unanswered(ARGV[5], ARGV[6])
end
redis.call('ZREM', EXP, id)
return status

-- @begin_call
-- ARGV: 5 step, 6 lease deadline, 7 unknown outcome, 8 expired outcome, 9 unavailable outcome, 10 attempt.
-- Returns {verdict, token, attempt}; verdict is go | gone | stale | busy | unknown | expired | failed.
-- Only the job for the next attempt gets `go`: a duplicate or late job of any attempt is stale.
local status = get('status')
if not status then
  return {'gone'}
end
if not calling(status) or get('step') ~= ARGV[5] then
  return {'stale'}
end
if get('in_flight') == '1' then
  local lease = redis.call('ZSCORE', LEASES, id)
  if lease and tonumber(lease) > now then
    return {'busy'}
  end
  -- The previous attempt died mid-call: Belvo may have acted on it, so it is not repeated.
  close('failed', ARGV[7])
  return {'unknown'}
end
if tonumber(get('attempts') or '0') ~= tonumber(ARGV[10]) - 1 or redis.call('ZSCORE', RETRIES, id) then
  return {'stale'}
end
if now >= tonumber(get('expires_at')) then
  return {close_unanswered(ARGV[8], ARGV[9])}
end
local attempt = redis.call('HINCRBY', H, 'attempts', 1)
redis.call('HSET', H, 'in_flight', '1')
redis.call('ZADD', LEASES, ARGV[6], id)
return {'go', redis.call('GET', T), attempt}

-- @release_call
-- ARGV: 5 step, 6 when the retry is due (ms), 7 1 if the attempt got no answer at all.
-- Ends an attempt that will be retried; the sweeper enqueues the retry once it is due.
if not calling(get('status')) or get('step') ~= ARGV[5] or get('in_flight') ~= '1' then
  return 0
end
redis.call('HSET', H, 'in_flight', '0')
if ARGV[7] == '1' then
  redis.call('HINCRBY', H, 'unanswered', 1)
end
redis.call('ZREM', LEASES, id)
redis.call('ZADD', RETRIES, ARGV[6], id)
return 1

-- @take_retry
-- ARGV: 5 step, 6 attempt the retry will be. Takes a due retry off the list; 1 if this caller took it.
local due = redis.call('ZSCORE', RETRIES, id)
if not due or tonumber(due) > now then
  return 0
end
redis.call('ZREM', RETRIES, id)
local status = get('status')
if not status or not calling(status) or get('in_flight') == '1' or get('step') ~= ARGV[5]
    or tonumber(get('attempts') or '0') ~= tonumber(ARGV[6]) - 1 then
  return 0
end
return 1

-- @finish
-- ARGV: 5 step, 6 final status, 7 outcome.
if not calling(get('status')) or get('step') ~= ARGV[5] then
  return 0
end
close(ARGV[6], ARGV[7])
return 1

-- @next_step
-- ARGV: 5 step, 6 new Belvo session, 7 challenge, 8 expects input, 9 expires_at, 10 ttl (ms), 11 link.
-- A resume's 428 is the next step; a register or retrieve's 428 is the first step's challenge.
local status = get('status')
if not calling(status) or get('step') ~= ARGV[5] then
  return 0
end
local step = tonumber(ARGV[5])
if status == 'submitted' then
  step = step + 1
end
redis.call('DEL', CREDS)
redis.call('HSET', H, 'status', 'awaiting_token', 'step', step, 'belvo_session', ARGV[6], 'link', ARGV[11],
  'challenge', ARGV[7], 'expects_input', ARGV[8], 'expires_at', ARGV[9], 'attempts', '0', 'unanswered', '0',
  'in_flight', '0', 'outcome', '', 'updated_at', now)
redis.call('DEL', T)
redis.call('ZREM', LEASES, id)
redis.call('ZADD', EXP, ARGV[9], id)
redis.call('PEXPIRE', H, ARGV[10])
-- NX: never take over another session's index (Belvo reusing a session id would be its bug, not ours).
redis.call('SET', belvo_prefix .. ARGV[6], id, 'NX', 'PX', ARGV[10])
return step

-- @recover_lapsed
-- ARGV: 5 unknown outcome. Closes a session whose in-flight call outlived its lease.
local lease = redis.call('ZSCORE', LEASES, id)
if not calling(get('status')) or get('in_flight') ~= '1' then
  redis.call('ZREM', LEASES, id)
  return 0
end
if lease and tonumber(lease) > now then
  return 0
end
close('failed', ARGV[5])
return 1

-- @abort
-- ARGV: 5 step, 6 unknown outcome, 7 internal-error outcome. The job died; close its step.
if not calling(get('status')) or get('step') ~= ARGV[5] then
  return 0
end
if get('in_flight') == '1' then
  close('failed', ARGV[6])
else
  close('failed', ARGV[7])
end
return 1
