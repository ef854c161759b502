/**
 * mfa-client.js: follow one session of the Belvo MFA session service from a browser, and answer it.
 *
 * A dependency-free ES module (TypeScript declarations: mfa-client.d.ts beside it).
 *
 *   import { MfaSession } from 'https://mfa.example.com/static/mfa-client.js';
 *   const mfa = new MfaSession({ baseUrl: 'https://mfa.example.com', sessionId, clientSecret });
 *   mfa.addEventListener('challenge', (e) => show(e.detail.challenge));  // each step to answer
 *   mfa.addEventListener('status', (e) => render(e.detail.session));     // every change
 *   mfa.addEventListener('done', (e) => finish(e.detail.status));         // succeeded, failed, expired, cancelled
 *   mfa.start();
 *   await mfa.submit('123456');  // or mfa.submit() when the challenge expects no input
 *
 * Following a session tries, in order: the event stream (GET /v1/sessions/{id}/stream, Server-Sent
 * Events read with fetch(), since EventSource cannot send the Authorization header), long-polling
 * (GET /v1/sessions/{id}?wait=25&after=<version>), and plain polling. A transport the server does not
 * offer is detected and the next one taken: a 404 or 405 on the stream, a session without `version`,
 * or a long-poll answered at once with nothing new (a server that ignores `wait`).
 *
 * The client secret is sent only in the Authorization header of requests to `baseUrl`, and is kept in
 * a private field: it never appears in a URL, an event or an error.
 */

export const FINAL_STATUSES = Object.freeze(['succeeded', 'failed', 'expired', 'cancelled']);
export const TRANSPORTS = Object.freeze(['stream', 'long-poll', 'poll']);

const STREAM_RETRY_MS = 1000;
const MAX_BACKOFF_MS = 15000;
const SUBMIT_ATTEMPTS = 4;
const TRANSIENT_STATUSES = new Set([408, 425, 429, 500, 502, 503, 504]);

/** An answer of the service that is not a success: its problem details (RFC 9457) as fields. */
export class MfaError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.name = 'MfaError';
    this.status = status;
    this.code = (problem && problem.code) || null;
    this.requestId = (problem && problem.request_id) || null;
    this.retryAfterMs = null;
    this.problem = problem || null;
  }

  /** True when the same request may succeed later: rate limits, outages, network trouble. */
  get transient() {
    return TRANSIENT_STATUSES.has(this.status) || (this.status === 409 && this.code === 'idempotency_key_in_progress');
  }
}

/** True when the session can change no more. */
export function isFinal(session) {
  return Boolean(session) && FINAL_STATUSES.includes(session.status);
}

/** A fresh Idempotency-Key (a random UUID), also outside secure contexts. */
export function newIdempotencyKey() {
  if (globalThis.crypto && typeof globalThis.crypto.randomUUID === 'function') {
    return globalThis.crypto.randomUUID();
  }
  const b = globalThis.crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * An incremental parser of the text/event-stream format (WHATWG HTML, "Server-sent events"):
 * push() text as it arrives, in pieces of any size; each complete event goes to onEvent as
 * {event, data, id}. Comments (heartbeats) are skipped; `retry` is kept in .retry (ms).
 */
export class EventStreamParser {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.retry = null;
    this.lastEventId = '';
    this._buffer = '';
    this._skipLf = false; // a chunk ended in CR: a LF opening the next one ends the same line
    this._data = [];
    this._event = '';
  }

  push(text) {
    let chunk = text;
    if (this._skipLf) {
      this._skipLf = false;
      if (chunk.startsWith('\n')) chunk = chunk.slice(1);
    }
    const buf = this._buffer + chunk;
    let pos = 0;
    for (;;) {
      let end = pos;
      while (end < buf.length && buf[end] !== '\r' && buf[end] !== '\n') end += 1;
      if (end === buf.length) break;
      const line = buf.slice(pos, end);
      pos = end + 1;
      if (buf[end] === '\r') {
        if (pos === buf.length) this._skipLf = true; // CRLF may be split across two chunks
        else if (buf[pos] === '\n') pos += 1;
      }
      this._line(line);
    }
    this._buffer = buf.slice(pos);
  }

  _line(line) {
    if (line === '') {
      this._dispatch();
      return;
    }
    if (line.startsWith(':')) return; // a comment: the server's heartbeat
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this._data.push(value);
    else if (field === 'event') this._event = value;
    else if (field === 'id' && !value.includes('\0')) this.lastEventId = value;
    else if (field === 'retry' && /^\d+$/.test(value)) this.retry = Number(value);
  }

  _dispatch() {
    const event = this._event || 'message';
    this._event = '';
    if (this._data.length === 0) return;
    const data = this._data.join('\n');
    this._data = [];
    this.onEvent({ event, data, id: this.lastEventId });
  }
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    if (signal && signal.aborted) return resolve();
    const timer = setTimeout(done, Math.max(0, ms));
    function done() {
      clearTimeout(timer);
      if (signal) signal.removeEventListener('abort', done);
      resolve();
    }
    if (signal) signal.addEventListener('abort', done, { once: true });
  });
}

function backoffMs(attempt, err) {
  const hinted = err instanceof MfaError ? err.retryAfterMs : null;
  const base = Math.min(MAX_BACKOFF_MS, 500 * 2 ** Math.min(attempt, 5));
  return Math.max(hinted || 0, base * (0.75 + Math.random() * 0.5));
}

/** A signal that aborts with `parent`, or after `ms` (when given), whichever comes first. */
function linkedSignal(parent, ms) {
  const controller = new AbortController();
  const abort = () => controller.abort();
  if (parent.aborted) abort();
  else parent.addEventListener('abort', abort, { once: true });
  const timer = ms ? setTimeout(abort, ms) : null;
  return {
    signal: controller.signal,
    abort,
    release() {
      if (timer) clearTimeout(timer);
      parent.removeEventListener('abort', abort);
    },
  };
}

function isFatal(err) {
  return err instanceof MfaError && !err.transient;
}

/** The next-newer view wins; an answer that crossed a newer one on the wire is dropped. */
function isNewer(next, current) {
  if (!current) return true;
  if (isFinal(current)) return false;
  if (Number.isInteger(next.version) && Number.isInteger(current.version)) {
    if (next.version !== current.version) return next.version > current.version;
    // Same version, another status: the service reads a session past its expiry as expired.
    return next.status !== current.status;
  }
  if (next.updated_at < current.updated_at) return false;
  return next.status !== current.status || next.step !== current.step || next.updated_at !== current.updated_at;
}

/**
 * One MFA session, followed from the browser. Events (CustomEvent, details in mfa-client.d.ts):
 * `status` on every change, `challenge` once per step that awaits the user, `done` once at the end,
 * `transport` when the way of following changes, `error` when following must stop (a credential
 * that does not open the session).
 */
export class MfaSession extends EventTarget {
  #secret;
  #options;
  #abort = new AbortController();
  #following = null;
  #announcedStep = 0;
  #expiryTimer = null;
  #clockOffsetMs = 0;

  constructor({ baseUrl = '', sessionId, clientSecret, transport = 'auto', pollIntervalMs = 1000,
                longPollSeconds = 25, heartbeatTimeoutMs = 45000, fetch: fetchImpl } = {}) {
    super();
    if (typeof sessionId !== 'string' || !sessionId) throw new TypeError('sessionId is required');
    if (typeof clientSecret !== 'string' || !clientSecret) throw new TypeError('clientSecret is required');
    if (transport !== 'auto' && !TRANSPORTS.includes(transport)) {
      throw new TypeError(`transport must be 'auto' or one of ${TRANSPORTS.join(', ')}`);
    }
    this.baseUrl = String(baseUrl).replace(/\/+$/, '');
    this.sessionId = sessionId;
    this.#secret = clientSecret;
    this.#options = {
      transport, pollIntervalMs, longPollSeconds, heartbeatTimeoutMs,
      fetch: fetchImpl || globalThis.fetch.bind(globalThis),
    };
    /** The latest session object the service answered, or null before the first. */
    this.session = null;
    /** How the session is followed now: 'stream', 'long-poll', 'poll', or null when not following. */
    this.transport = null;
  }

  /** Milliseconds until the step's expires_at by the service's clock; null without one. */
  expiresInMs() {
    const at = this.session && this.session.expires_at;
    return at ? Date.parse(at) - (Date.now() + this.#clockOffsetMs) : null;
  }

  /** Follow the session until it ends or close() is called; a second call changes nothing. */
  start() {
    if (!this.#following && !this.#abort.signal.aborted) {
      this.#following = this.#follow().finally(() => {
        this.transport = null;
      });
    }
    return this;
  }

  /** Stop following: no request of the follower stays open. Submissions already sent are not undone. */
  close() {
    this.#abort.abort();
    clearTimeout(this.#expiryTimer);
  }

  /** Read the session once. */
  async read() {
    return this.#accept(await this.#request('GET', ''));
  }

  async #read(signal) {
    return this.#accept(await this.#request('GET', '', { signal }));
  }

  /**
   * Submit the user's token, or nothing when the challenge expects no input. One Idempotency-Key
   * covers the retries of this call (network trouble, 429, 503), so the service accepts it once.
   */
  async submit(token) {
    const body = token === undefined || token === null ? {} : { token: String(token) };
    const key = newIdempotencyKey();
    for (let attempt = 1; ; attempt += 1) {
      try {
        return this.#accept(await this.#request('POST', '/token', { body, idempotencyKey: key }));
      } catch (err) {
        if (isFatal(err) || attempt >= SUBMIT_ATTEMPTS) {
          if (err instanceof MfaError && (err.status === 409 || err.status === 410)) {
            await this.read().catch(() => undefined); // show what the session became instead
          }
          throw err;
        }
        await sleep(backoffMs(attempt, err));
      }
    }
  }

  /** Cancel the session while it awaits the user's token. */
  async cancel() {
    try {
      return this.#accept(await this.#request('POST', '/cancel', { body: {} }));
    } catch (err) {
      if (err instanceof MfaError && err.status === 409) await this.read().catch(() => undefined);
      throw err;
    }
  }

  // --- following ---------------------------------------------------------------------------------

  async #follow() {
    const signal = this.#abort.signal;
    const order = this.#options.transport === 'auto' ? TRANSPORTS : [this.#options.transport];
    try {
      await this.#untilRead(signal);
      for (let i = 0; i < order.length && !isFinal(this.session) && !signal.aborted; i += 1) {
        this.#setTransport(order[i]);
        const run = { stream: () => this.#stream(signal), 'long-poll': () => this.#longPoll(signal),
          poll: () => this.#poll(signal) }[order[i]];
        const result = await run();
        if (result !== 'unsupported') break;
        if (i === order.length - 1) { // a transport asked for that the service does not offer
          this.#setTransport('poll');
          await this.#poll(signal);
        }
      }
    } catch (err) {
      if (!signal.aborted) this.#emit('error', { error: err });
    }
  }

  async #untilRead(signal) {
    for (let attempt = 1; !signal.aborted; attempt += 1) {
      try {
        await this.#read(signal);
        return;
      } catch (err) {
        if (isFatal(err)) throw err;
        await sleep(backoffMs(attempt, err), signal);
      }
    }
  }

  async #stream(signal) {
    let idle = 0; // connections in a row that brought nothing, not even a heartbeat
    let refused = 0; // answers in a row that were a 429 or 5xx: the service is busy, not the path blocked
    let serverRetryMs = STREAM_RETRY_MS; // the stream's own `retry:`, kept across connections
    let retryMs = serverRetryMs;
    let lastEventId = this.session && Number.isInteger(this.session.version) ? String(this.session.version) : '';
    while (!signal.aborted && !isFinal(this.session)) {
      const link = linkedSignal(signal);
      let heard = false;
      let watchdog = null;
      const bark = () => {
        clearTimeout(watchdog);
        watchdog = setTimeout(link.abort, this.#options.heartbeatTimeoutMs);
      };
      try {
        bark();
        const headers = { Accept: 'text/event-stream' };
        if (lastEventId) headers['Last-Event-ID'] = lastEventId;
        const res = await this.#fetch('GET', '/stream', { headers, signal: link.signal });
        if (!res.ok) {
          const err = await this.#problem(res);
          if (err.status === 404 && err.code === 'session_not_found') throw err;
          if ([400, 404, 405, 406, 501].includes(err.status)) return 'unsupported';
          throw err;
        }
        if (!(res.headers.get('Content-Type') || '').startsWith('text/event-stream')) return 'unsupported';
        const parser = new EventStreamParser(({ data, id }) => {
          if (id) lastEventId = id;
          const session = JSON.parse(data);
          if (session && typeof session.status === 'string') this.#accept(session);
        });
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        try {
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            heard = true;
            bark();
            parser.push(value);
            if (isFinal(this.session)) break;
          }
        } finally {
          reader.cancel().catch(() => undefined);
        }
        if (parser.retry !== null) serverRetryMs = parser.retry;
        retryMs = serverRetryMs;
        idle = heard ? 0 : idle + 1;
        refused = 0;
      } catch (err) {
        if (signal.aborted) return 'stopped';
        if (isFatal(err)) throw err;
        if (err instanceof MfaError) refused += 1;
        else idle = heard ? 0 : idle + 1; // the connection failed or was cut
        retryMs = Math.max(serverRetryMs, backoffMs(idle + refused, err));
      } finally {
        clearTimeout(watchdog);
        link.release();
      }
      // Twice nothing at all: a proxy that buffers or cuts event streams. Long-polling gets through.
      if (idle >= 2) return 'unsupported';
      if (!isFinal(this.session)) await sleep(retryMs, signal);
    }
    return 'stopped';
  }

  async #longPoll(signal) {
    const wait = this.#options.longPollSeconds;
    for (let attempt = 1; !signal.aborted && !isFinal(this.session); ) {
      const after = this.session.version;
      if (!Number.isInteger(after)) return 'unsupported'; // no version: the service predates long-polling
      const began = Date.now();
      let session;
      try {
        session = await this.#request('GET', '', {
          query: `?wait=${wait}&after=${after}`, timeoutMs: (wait + 15) * 1000, signal,
        });
        attempt = 1;
      } catch (err) {
        // A service that refuses `wait` or `after` does not long-poll: polling works with it all the same.
        if (err instanceof MfaError && (err.status === 400 || err.status === 422)) return 'unsupported';
        if (isFatal(err) || signal.aborted) throw err;
        await sleep(backoffMs(attempt++, err), signal);
        continue;
      }
      this.#accept(session);
      const unchanged = !Number.isInteger(session.version) || session.version <= after;
      if (unchanged && !isFinal(session) && Date.now() - began < (wait * 1000) / 2) return 'unsupported';
    }
    return 'stopped';
  }

  async #poll(signal) {
    for (let attempt = 1; !signal.aborted && !isFinal(this.session); ) {
      try {
        await this.#read(signal);
        attempt = 1;
        await sleep(this.#options.pollIntervalMs, signal);
      } catch (err) {
        if (isFatal(err) || signal.aborted) throw err;
        await sleep(backoffMs(attempt++, err), signal);
      }
    }
    return 'stopped';
  }

  // --- state ---------------------------------------------------------------------------------------

  #accept(session) {
    if (!isNewer(session, this.session)) return this.session;
    this.session = session;
    this.#emit('status', { session });
    if (session.status === 'awaiting_token' && session.step !== this.#announcedStep) {
      this.#announcedStep = session.step;
      this.#emit('challenge', {
        session,
        step: session.step,
        challenge: session.challenge || {},
        expectsUserInput: !session.challenge || session.challenge.expects_user_input !== false,
        expiresAt: session.expires_at ? new Date(session.expires_at) : null,
      });
    }
    this.#watchExpiry();
    if (isFinal(session)) {
      this.#emit('done', { session, status: session.status, outcome: session.outcome });
      this.close();
    }
    return session;
  }

  /** Read again when the step's time is up, so `done` (expired) comes even from a quiet stream. */
  #watchExpiry() {
    clearTimeout(this.#expiryTimer);
    const left = this.expiresInMs();
    if (this.session.status !== 'awaiting_token' || left === null) return;
    this.#expiryTimer = setTimeout(() => this.read().catch(() => undefined), Math.min(Math.max(left + 250, 0), 2 ** 31 - 1));
  }

  #setTransport(transport) {
    if (this.transport === transport) return;
    this.transport = transport;
    this.#emit('transport', { transport });
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  // --- HTTP ----------------------------------------------------------------------------------------

  async #request(method, suffix, { body, idempotencyKey, query = '', timeoutMs = 30000, signal } = {}) {
    const link = linkedSignal(signal || new AbortController().signal, timeoutMs);
    try {
      const headers = { Accept: 'application/json' };
      if (body !== undefined) headers['Content-Type'] = 'application/json';
      if (idempotencyKey) headers['Idempotency-Key'] = idempotencyKey;
      const res = await this.#fetch(method, suffix + query, {
        headers, signal: link.signal, body: body === undefined ? undefined : JSON.stringify(body),
      });
      if (!res.ok) throw await this.#problem(res);
      return await res.json();
    } finally {
      link.release();
    }
  }

  async #fetch(method, suffix, { headers, signal, body }) {
    const url = `${this.baseUrl}/v1/sessions/${encodeURIComponent(this.sessionId)}${suffix}`;
    const res = await this.#options.fetch(url, {
      method, body, signal, cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer',
      headers: { ...headers, Authorization: `Bearer ${this.#secret}` },
    });
    const date = Date.parse(res.headers.get('Date') || '');
    if (!Number.isNaN(date)) {
      const offset = date + 500 - Date.now(); // Date has whole seconds
      this.#clockOffsetMs = Math.abs(offset) > 1500 ? offset : 0;
    }
    return res;
  }

  async #problem(res) {
    let problem = null;
    try {
      problem = await res.json();
    } catch {
      problem = null;
    }
    const err = new MfaError(res.status, problem);
    const retryAfter = Number(res.headers.get('Retry-After'));
    if (Number.isFinite(retryAfter) && retryAfter >= 0) err.retryAfterMs = retryAfter * 1000;
    return err;
  }
}
