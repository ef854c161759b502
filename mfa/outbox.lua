-- The webhook outbox's Lua (keys: mfa/keys.py). The section "@library" is prepended to every script
-- that makes a change (every transition in mfa/transitions.lua, by mfa/scripts.py), so the event of a
-- change is written by the very script that commits the change: no change without its event, whatever
-- dies afterwards. The other sections are the outbox's own scripts (mfa/outbox.py calls them by name).
--
-- The generated header (mfa/scripts.py) names the keys and limits: OUTBOX, GROUP, WEBHOOK_PREFIX,
-- WEBHOOK_PAYLOAD_PREFIX, WEBHOOK_ATTEMPTS_PREFIX, WEBHOOK_STATUS_PREFIX, WEBHOOK_RETRIES,
-- WEBHOOK_STATUSES, OUTBOX_GRACE, ATTEMPTS_KEPT. A session's events need no list of their own: their
-- ids derive from its versions (mfa.webhooks.event_id).
-- An event's hash holds short values only, so Redis keeps it compact (a listpack): type, session,
-- sequence, step, created_at, status (failed if any destination failed, else pending if any is, else
-- delivered), count (destinations), source (what its payload key holds: `record`, a session snapshot
-- as JSON, or `data`, JSON, until the first attempt stores the exact `body` sent), and for each
-- destination i: u<i> (its URL), s<i> (pending, delivered, failed), n<i> (attempts this round), due<i>
-- (when a retry is due). Its payload, attempts and hash expire together.
-- ARGV 1-2 of the outbox's own scripts: now (ms), retention (ms).
-- @library
local function webhook_status(key)
  local count = tonumber(redis.call('HGET', key, 'count'))
  local failed, pending = false, false
  for i = 0, count - 1 do
    local s = redis.call('HGET', key, 's' .. i)
    failed = failed or s == 'failed'
    pending = pending or s == 'pending'
  end
  if failed then
    return 'failed', pending
  elseif pending then
    return 'pending', pending
  end
  return 'delivered', pending
end

-- Record the event's status and list it under it (delivered and failed lists keep `retention`).
local function index_webhook(key, event, at, retention)
  local status, pending = webhook_status(key)
  redis.call('HSET', key, 'status', status)
  for _, other in ipairs(WEBHOOK_STATUSES) do
    if other ~= status then
      redis.call('ZREM', WEBHOOK_STATUS_PREFIX .. other, event)
    end
  end
  redis.call('ZADD', WEBHOOK_STATUS_PREFIX .. status, at, event)
  if status ~= 'pending' then
    redis.call('ZREMRANGEBYSCORE', WEBHOOK_STATUS_PREFIX .. status, '-inf', at - retention)
  end
  return pending
end

-- Keep an event's keys `ttl` ms more.
local function keep_webhook(event, ttl)
  redis.call('PEXPIRE', WEBHOOK_PREFIX .. event, ttl)
  redis.call('PEXPIRE', WEBHOOK_PAYLOAD_PREFIX .. event, ttl)
  redis.call('PEXPIRE', WEBHOOK_ATTEMPTS_PREFIX .. event, ttl)
end

-- Write a webhook event and one outbox entry per destination; 0 if the event exists already (its id
-- names one change). `source_kind` is 'record' or 'data'; `destinations` a JSON list of URLs. Kept
-- `retention` plus OUTBOX_GRACE, so an event outlives a long absence of workers; a settled one is kept
-- `retention` from then.
local function add_webhook(event, type, session, sequence, step, created_at, source_kind, source,
                           destinations, now, retention)
  local key = WEBHOOK_PREFIX .. event
  if redis.call('EXISTS', key) == 1 then
    return 0
  end
  local urls = cjson.decode(destinations)
  local fields = {'type', type, 'session', session, 'sequence', sequence, 'step', step, 'created_at',
    created_at, 'status', 'pending', 'count', #urls, 'source', source_kind}
  for i, url in ipairs(urls) do
    fields[#fields + 1] = 'u' .. (i - 1)
    fields[#fields + 1] = url
    fields[#fields + 1] = 's' .. (i - 1)
    fields[#fields + 1] = 'pending'
    fields[#fields + 1] = 'n' .. (i - 1)
    fields[#fields + 1] = '0'
  end
  redis.call('HSET', key, unpack(fields))
  redis.call('SET', WEBHOOK_PAYLOAD_PREFIX .. event, source)
  for i = 0, #urls - 1 do
    redis.call('XADD', OUTBOX, '*', 'e', event, 't', i)
  end
  keep_webhook(event, retention + OUTBOX_GRACE)
  -- A new event is pending everywhere, and listed nowhere else yet.
  redis.call('ZADD', WEBHOOK_STATUS_PREFIX .. 'pending', now, event)
  return 1
end

-- @add(event, type, session, sequence, step, created_at, data, destinations)
-- An event that is not a session transition's (mfa.outbox.Outbox.add), in the caller's transaction.
return add_webhook(event, type, session, sequence, step, created_at, 'data', data, destinations, now, retention)

-- @settle(event, target, entry, round, outcome, due, attempt, body)
-- One attempt at destination `target` has ended: acknowledge and delete its outbox entry and log the
-- attempt. Unless another attempt or a redelivery has moved the destination on meanwhile (`round` is
-- the attempts count the attempt started from), record its outcome: delivered, failed, or retry at `due`.
-- Returns 'settled', 'stale', or 'gone' (the event expired).
local key = WEBHOOK_PREFIX .. event
if entry ~= '' then
  redis.call('XACK', OUTBOX, GROUP, entry)
  redis.call('XDEL', OUTBOX, entry)
end
if redis.call('EXISTS', key) == 0 then
  return 'gone'
end
local attempts = WEBHOOK_ATTEMPTS_PREFIX .. event
redis.call('RPUSH', attempts, attempt)
redis.call('LTRIM', attempts, -ATTEMPTS_KEPT, -1)
if body ~= '' and redis.call('HGET', key, 'source') ~= 'body' then
  -- The exact bytes sent are kept, so every later attempt sends them again, whatever the code renders.
  redis.call('SET', WEBHOOK_PAYLOAD_PREFIX .. event, body, 'KEEPTTL')
  redis.call('HSET', key, 'source', 'body')
end
local verdict = 'stale'
if redis.call('HGET', key, 's' .. target) == 'pending' and redis.call('HGET', key, 'n' .. target) == round then
  verdict = 'settled'
  redis.call('HINCRBY', key, 'n' .. target, 1)
  if outcome == 'retry' then
    redis.call('HSET', key, 'due' .. target, due)
    redis.call('ZADD', WEBHOOK_RETRIES, due, event .. ' ' .. target)
    local keep = tonumber(due) - now + retention + OUTBOX_GRACE
    if redis.call('PTTL', key) < keep then
      keep_webhook(event, keep)
    end
  else
    redis.call('HSET', key, 's' .. target, outcome)
    redis.call('HDEL', key, 'due' .. target)
  end
  if not index_webhook(key, event, now, retention) then
    keep_webhook(event, retention)
  end
end
redis.call('PEXPIRE', attempts, redis.call('PTTL', key))
return verdict

-- @promote(member)
-- A due retry ("{event} {target}" in WEBHOOK_RETRIES) goes back into the outbox; 1 if this call moved it.
local due = redis.call('ZSCORE', WEBHOOK_RETRIES, member)
if not due or tonumber(due) > now then
  return 0
end
redis.call('ZREM', WEBHOOK_RETRIES, member)
local event, target = string.match(member, '^(%S+) (%d+)$')
local key = WEBHOOK_PREFIX .. event
if redis.call('HGET', key, 's' .. target) ~= 'pending' then
  return 0
end
redis.call('HDEL', key, 'due' .. target)
redis.call('XADD', OUTBOX, '*', 'e', event, 't', target)
return 1

-- @redeliver(event)
-- A new round of attempts under the same event id: at every destination that failed, or, if none did,
-- at every destination delivered. Returns how many started; false if there is no such event.
local key = WEBHOOK_PREFIX .. event
local count = tonumber(redis.call('HGET', key, 'count'))
if not count then
  return false
end
local again = 'delivered'
for i = 0, count - 1 do
  if redis.call('HGET', key, 's' .. i) == 'failed' then
    again = 'failed'
  end
end
local started = 0
for i = 0, count - 1 do
  if redis.call('HGET', key, 's' .. i) == again then
    redis.call('HSET', key, 's' .. i, 'pending', 'n' .. i, 0)
    redis.call('XADD', OUTBOX, '*', 'e', event, 't', i)
    started = started + 1
  end
end
if started > 0 then
  index_webhook(key, event, now, retention)
  keep_webhook(event, retention + OUTBOX_GRACE)
end
return started

-- @forget_consumers(idle)
-- Drops the group's consumers that hold nothing and have not read for `idle` ms (workers gone for
-- good). Checked and dropped in one script: a consumer that reads meanwhile is never dropped with
-- entries in hand.
local dropped = 0
for _, consumer in ipairs(redis.call('XINFO', 'CONSUMERS', OUTBOX, GROUP)) do
  local info = {}
  for i = 1, #consumer, 2 do
    info[consumer[i]] = consumer[i + 1]
  end
  if tonumber(info['pending']) == 0 and tonumber(info['idle']) > tonumber(idle) then
    redis.call('XGROUP', 'DELCONSUMER', OUTBOX, GROUP, info['name'])
    dropped = dropped + 1
  end
end
return dropped
