// TypeScript declarations of mfa-client.js: the browser client of the Belvo MFA session service.

export type SessionStatus =
  | 'registering'
  | 'retrieving'
  | 'awaiting_token'
  | 'submitted'
  | 'succeeded'
  | 'failed'
  | 'expired'
  | 'cancelled';

export type FinalStatus = 'succeeded' | 'failed' | 'expired' | 'cancelled';

export type Transport = 'stream' | 'long-poll' | 'poll';

/** Belvo's `token_generation_data`, as the bank sent it. */
export interface Challenge {
  instructions?: string;
  /** e.g. `numeric`, `qr_code`, `device`: Belvo keeps no closed list. */
  type?: string;
  /** What the user needs to produce the token; for a QR code, the code's data. */
  value?: string;
  /** false: the user confirms elsewhere (a bank app); submit() with no token. */
  expects_user_input?: boolean;
  [field: string]: unknown;
}

/** How a step ended, as a client secret may see it. */
export interface Outcome {
  http_status: number | null;
  code: string | null;
  message: string | null;
  result?: unknown;
  upstream_errors?: unknown[] | null;
  upstream_request_id?: string | null;
}

/** The session object of GET /v1/sessions/{id}. */
export interface Session {
  id: string;
  status: SessionStatus;
  resource: string;
  link: string | null;
  step: number;
  challenge: Challenge | null;
  expires_at: string | null;
  created_at: string;
  updated_at: string;
  external_ref: string | null;
  outcome: Outcome | null;
  /** Goes up with every change; present once the service offers live status. */
  version?: number;
}

/** RFC 9457 problem details, with the service's `code` and `request_id`. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail?: string;
  code: string;
  request_id?: string | null;
  [member: string]: unknown;
}

export interface MfaSessionOptions {
  /** The service's origin, e.g. `https://mfa.example.com`; '' (the default) for the page's own. */
  baseUrl?: string;
  sessionId: string;
  clientSecret: string;
  /** 'auto' (the default) tries the stream, then long-polling, then polling. */
  transport?: 'auto' | Transport;
  /** Between two reads when polling; default 1000. */
  pollIntervalMs?: number;
  /** How long one long-poll may wait at the service; default 25. */
  longPollSeconds?: number;
  /** A stream silent this long (no event, no heartbeat) is reopened; default 45000. */
  heartbeatTimeoutMs?: number;
  /** The fetch to use; default globalThis.fetch. */
  fetch?: typeof fetch;
}

export interface StatusDetail {
  session: Session;
}

export interface ChallengeDetail {
  session: Session;
  step: number;
  challenge: Challenge;
  expectsUserInput: boolean;
  expiresAt: Date | null;
}

export interface DoneDetail {
  session: Session;
  status: FinalStatus;
  outcome: Outcome | null;
}

export interface TransportDetail {
  transport: Transport;
}

export interface ErrorDetail {
  error: MfaError | Error;
}

export interface MfaSessionEventMap {
  /** Every change of the session. */
  status: CustomEvent<StatusDetail>;
  /** Once per step that awaits the user's token (or approval). */
  challenge: CustomEvent<ChallengeDetail>;
  /** Once, when the session ends; following stops. */
  done: CustomEvent<DoneDetail>;
  /** The way the session is followed changed. */
  transport: CustomEvent<TransportDetail>;
  /** Following stopped for good: the credential does not open the session. */
  error: CustomEvent<ErrorDetail>;
}

export declare const FINAL_STATUSES: readonly FinalStatus[];
export declare const TRANSPORTS: readonly Transport[];

export declare function isFinal(session: Session | null | undefined): boolean;
export declare function newIdempotencyKey(): string;

/** An answer of the service that is not a success. */
export declare class MfaError extends Error {
  readonly name: 'MfaError';
  readonly status: number;
  /** The problem's `code`, e.g. `session_not_found`, `session_expired`, `rate_limited`. */
  readonly code: string | null;
  readonly requestId: string | null;
  /** From Retry-After, when the service sent one. */
  retryAfterMs: number | null;
  readonly problem: Problem | null;
  /** True when the same request may succeed later (429, 503, ...). */
  readonly transient: boolean;
  constructor(status: number, problem?: Problem | null);
}

/** An incremental text/event-stream parser (the WHATWG format). */
export declare class EventStreamParser {
  constructor(onEvent: (event: { event: string; data: string; id: string }) => void);
  /** The last `retry:` the stream sent, in milliseconds. */
  retry: number | null;
  lastEventId: string;
  push(text: string): void;
}

export declare class MfaSession extends EventTarget {
  constructor(options: MfaSessionOptions);
  readonly baseUrl: string;
  readonly sessionId: string;
  /** The latest session object the service answered; null before the first. */
  readonly session: Session | null;
  /** How the session is followed now; null when not following. */
  readonly transport: Transport | null;

  /** Follow the session until it ends or close() is called. */
  start(): this;
  /** Stop following. */
  close(): void;
  /** Read the session once. */
  read(): Promise<Session>;
  /** Submit the user's token (or nothing, when the challenge expects no input), once per call;
   *  resolves with the session as the client then knows it. */
  submit(token?: string | null): Promise<Session>;
  /** Cancel the session while it awaits the user's token. */
  cancel(): Promise<Session>;
  /** Milliseconds until the step's expires_at, by the service's clock; null without one. */
  expiresInMs(): number | null;

  addEventListener<K extends keyof MfaSessionEventMap>(
    type: K,
    listener: (this: MfaSession, event: MfaSessionEventMap[K]) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  removeEventListener<K extends keyof MfaSessionEventMap>(
    type: K,
    listener: (this: MfaSession, event: MfaSessionEventMap[K]) => void,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void;
}
