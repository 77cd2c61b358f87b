import { z } from 'zod';
import { BatonError } from '../errors.js';

/**
 * Every error code the coordinator puts on the wire, with its HTTP status and the message sent when
 * the error names no better one. Codes are kebab-case, like every other word of the API (refusal
 * reasons, health reasons, event types); clients act on the code, never on the message.
 */
export const apiErrors = {
  /** The request does not match the API (`field` names the first offending field). */
  'bad-request': { status: 400, message: 'the request does not match the API' },
  unauthorized: { status: 401, message: 'a bearer token is required' },
  forbidden: { status: 403, message: 'this action needs the admin token' },
  /** An unknown node, group or lease, or no such route. */
  'not-found': { status: 404, message: 'not found' },
  /** A renew or release with a fencing token that is not the lease's. */
  'stale-token': { status: 409, message: 'the fencing token does not match the lease' },
  /** An operator action that does not apply to the group's or node's state. */
  conflict: { status: 409, message: 'the request does not apply to the current state' },
  /** A renew or release of a lease that has ended (released, expired, taken back). */
  'lease-ended': { status: 409, message: 'the lease has ended' },
  'payload-too-large': { status: 413, message: 'the body is larger than the limit' },
  'unsupported-media-type': { status: 415, message: 'send application/json' },
  internal: { status: 500, message: 'internal error' },
  /** Busy for now (e.g. too many status page listeners): try again after `retry-after`. */
  unavailable: { status: 503, message: 'try again later' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ApiErrorCode = keyof typeof apiErrors;

export const errorCodeSchema = z.enum(Object.keys(apiErrors) as [ApiErrorCode, ...ApiErrorCode[]]);

/** The body of every 4xx and 5xx answer. */
export const errorResponseSchema = z.object({
  error: errorCodeSchema,
  message: z.string(),
  /** Dotted path of the offending field for validation errors. */
  field: z.string().optional(),
});
export type ErrorResponse = z.infer<typeof errorResponseSchema>;

/** An error the coordinator answers as is: its code's status, and its body. */
export class ApiError extends BatonError {
  declare readonly code: ApiErrorCode;
  readonly status: number;

  constructor(
    code: ApiErrorCode,
    message: string = apiErrors[code].message,
    /** Dotted path of the offending field, for `bad-request`. */
    readonly field?: string,
  ) {
    super(code, message);
    this.status = apiErrors[code].status;
  }

  get body(): ErrorResponse {
    return { error: this.code, message: this.message, ...(this.field !== undefined ? { field: this.field } : {}) };
  }
}

/**
 * The answer to an error a route threw: an ApiError as it is; an error that carries an HTTP
 * `statusCode` (the framework's: body too large, wrong media type, unparsable JSON) by that status;
 * anything else is `internal`, with nothing of it on the wire.
 */
export function toErrorResponse(error: unknown): { status: number; body: ErrorResponse } {
  const known = error instanceof ApiError ? error : fromStatusCode(error);
  return { status: known.status, body: known.body };
}

function fromStatusCode(error: unknown): ApiError {
  if (!(error instanceof Error)) return new ApiError('internal');
  const statusCode = 'statusCode' in error ? error.statusCode : undefined;
  if (typeof statusCode !== 'number' || statusCode < 400 || statusCode >= 500) return new ApiError('internal');
  if (statusCode === 413) return new ApiError('payload-too-large', error.message);
  if (statusCode === 415) return new ApiError('unsupported-media-type');
  return new ApiError('bad-request', error.message, 'body');
}
