/**
 * Errors of the serving layer (HTTP server, eval, workers). Library failures stay `NlaError`s with their own codes;
 * conditions that only exist in a service (auth, load shedding, a route or engine that is not there) get the codes
 * below. Every HTTP error body is `{error: {code, message}}`; the status comes from the code (statusFor).
 */
import { NlaError, isNlaErrorCode, type NlaErrorCode } from '../errors';

export const SERVICE_ERROR_CODES = [
  'ERR_NLA_UNAUTHORIZED', // 401: a /v1 route without the right `Authorization: Bearer` key
  'ERR_NLA_PAYLOAD_TOO_LARGE', // 413: the body is over --max-body-bytes or has more items than --max-items
  'ERR_NLA_OVERLOADED', // 429: the queue is full (Retry-After says when to come back)
  'ERR_NLA_NOT_READY', // 503: the engine is still loading, or the server is draining for shutdown
  'ERR_NLA_NOT_FOUND', // 404: no such route
  'ERR_NLA_NOT_IMPLEMENTED', // 501: no verbalizer (AV) was loaded, or an optional dependency is missing
] as const;
export type ServiceErrorCode = (typeof SERVICE_ERROR_CODES)[number];
export type AnyErrorCode = NlaErrorCode | ServiceErrorCode;

export class ServiceError extends Error {
  readonly code: ServiceErrorCode;
  /** Seconds after which a retry may succeed (429 / 503). */
  readonly retryAfter?: number;
  constructor(code: ServiceErrorCode, message: string, options?: { cause?: unknown; retryAfter?: number }) {
    super(message, options);
    this.name = 'ServiceError';
    this.code = code;
    this.retryAfter = options?.retryAfter;
  }
}

/**
 * A request that parsed and has the right shape but whose values cannot be used (a vector of the wrong length,
 * NaN in a base64 vector, a layer the model does not have): HTTP 422 with ERR_NLA_INVALID_ARG. Shape errors (wrong
 * types, missing or unknown fields, malformed JSON) stay plain ERR_NLA_INVALID_ARG with 400.
 */
export class UnprocessableError extends NlaError {
  constructor(message: string) {
    super('ERR_NLA_INVALID_ARG', message);
  }
}

const SERVICE_STATUS: Record<ServiceErrorCode, number> = {
  ERR_NLA_UNAUTHORIZED: 401,
  ERR_NLA_PAYLOAD_TOO_LARGE: 413,
  ERR_NLA_OVERLOADED: 429,
  ERR_NLA_NOT_READY: 503,
  ERR_NLA_NOT_FOUND: 404,
  ERR_NLA_NOT_IMPLEMENTED: 501,
};

/** HTTP status for an error code (an engine-side failure of the caller's input is 422; our bugs are 500). */
export function statusFor(err: { code: AnyErrorCode }, fallback = 500): number {
  if (err instanceof UnprocessableError) return 422;
  const code = err.code;
  if ((SERVICE_ERROR_CODES as readonly string[]).includes(code)) return SERVICE_STATUS[code as ServiceErrorCode];
  switch (code) {
    case 'ERR_NLA_INVALID_ARG': return 400;
    case 'ERR_NLA_CONTEXT_OVERFLOW': return 413; // an item over the token limit
    case 'ERR_NLA_ABORTED':
    case 'ERR_NLA_CLOSED':
    case 'ERR_NLA_OUT_OF_MEMORY': return 503;
    default: return fallback;
  }
}

export interface ErrorBody {
  error: { code: AnyErrorCode; message: string };
}

/** Any thrown value as a code + message (unknown errors become ERR_NLA_INTERNAL; their text is kept short). */
export function describeError(e: unknown): { code: AnyErrorCode; message: string; status: number; retryAfter?: number } {
  if (e instanceof ServiceError) return { code: e.code, message: e.message, status: statusFor(e), retryAfter: e.retryAfter };
  if (e instanceof NlaError) return { code: e.code, message: e.message, status: statusFor(e) };
  const code = (e as { code?: unknown })?.code;
  if (isNlaErrorCode(code)) return { code, message: String((e as Error).message), status: statusFor({ code }) };
  return { code: 'ERR_NLA_INTERNAL', message: `internal error: ${(e as Error)?.message ?? String(e)}`, status: 500 };
}
