import type { ApiErrorCode, ErrorResponse } from '../../shared/api/v1.js';
import { BatonError } from '../../shared/errors.js';

/**
 * What the agent's coordinator client throws, apart from the caller's own abort. They live apart from
 * the client so that other modules (the update, reconcile, their fakes) can use them with `instanceof`.
 */

/** No coordinator answered: network errors, timeouts or 5xx answers from every URL. Worth retrying later. */
export class CoordinatorUnavailableError extends BatonError {
  constructor(
    readonly operation: string,
    /** One entry per URL tried: its origin and what went wrong. */
    readonly attempts: { url: string; status: number | undefined; reason: string }[],
    options?: { cause?: unknown },
  ) {
    super(
      'COORDINATOR_UNAVAILABLE',
      `coordinator unavailable for ${operation}: ` + attempts.map((a) => `${a.url}: ${a.reason}`).join('; '),
      options,
    );
  }
}

/** The coordinator answered with a 4xx the operation has no other meaning for. */
export class CoordinatorRejectedError extends BatonError {
  constructor(
    readonly operation: string,
    readonly status: number,
    /** The error body when it matches errorResponseSchema. */
    readonly body: ErrorResponse | undefined,
    rawBody?: string,
  ) {
    super(
      'COORDINATOR_REJECTED',
      `coordinator rejected ${operation} with ${status}` +
        (body
          ? `: ${body.error}: ${body.message}${body.field ? ` (field ${body.field})` : ''}`
          : rawBody
            ? `: ${truncate(rawBody, 200)}`
            : ''),
    );
  }
}

/** The coordinator answered with a body that does not match the API: `field` names the first offending field. */
export class CoordinatorProtocolError extends BatonError {
  constructor(
    readonly operation: string,
    readonly status: number,
    /** Dotted path of the field (`(root)` for the whole body, `(body)` when it is not JSON). */
    readonly field: string,
    detail: string,
  ) {
    super(
      'COORDINATOR_PROTOCOL',
      `coordinator answered ${operation} with ${status} and an invalid body at ${field}: ${detail}`,
    );
  }
}

/** The coordinator's error codes that mean the lease is gone. */
export type LeaseLostReason = Extract<ApiErrorCode, 'stale-token' | 'lease-ended' | 'not-found'>;

/**
 * The lease is gone: the coordinator refused a renew or release because the fencing token is
 * stale (`stale-token`), the lease ended (`lease-ended`, e.g. expired), or it does not know the
 * lease (`not-found`, a 404). The holder must stop acting on it.
 */
export class LeaseLostError extends BatonError {
  constructor(
    readonly leaseId: string,
    readonly reason: LeaseLostReason,
    readonly operation: 'renew' | 'release',
    detail?: string,
  ) {
    super('LEASE_LOST', `lease ${leaseId} lost on ${operation}: ${reason}${detail ? ` (${detail})` : ''}`);
  }
}

function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}...` : text;
}
