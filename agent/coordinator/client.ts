import { request, type Dispatcher } from 'undici';
import type { z } from 'zod';
import { linkAbort } from '../../shared/abort.js';
import {
  apiRoutes,
  errorResponseSchema,
  pathOf,
  type ApiRoute,
  type ErrorResponse,
  type RouteAnswer,
  type RouteRequest,
  type HeartbeatRequest,
  type HeartbeatResponse,
  type LeaseDecision,
  type LeaseRequest,
  type ReleaseRequest,
  type ReleaseResponse,
  type RenewResponse,
} from '../../shared/api/v1.js';
import { BatonError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import type { CoordinatorClient } from '../ports.js';
import { CoordinatorProtocolError, CoordinatorRejectedError, CoordinatorUnavailableError, LeaseLostError } from './errors.js';

/**
 * The agent's side of the coordinator API v1 (the routes of shared/api/routes.ts), over undici.
 *
 * - Every attempt has a timeout (`timeoutMs`, covering the answer's headers and body).
 * - With several URLs, a coordinator that is unavailable (network error, timeout, 5xx) is
 *   skipped for the next one, in order; the last one that answered is tried first next time.
 *   Any answer below 500 counts as "answered": a 4xx is the coordinator's word, not an outage.
 * - Every response body is validated with its zod schema.
 * - The caller's AbortSignal cancels the call; its reason is thrown as is, and no other URL is tried.
 */

export interface CoordinatorClientOptions {
  /** Base URLs, e.g. `http://127.0.0.1:7070`; tried in order on unavailability. */
  urls: string[];
  /** Sent as `Authorization: Bearer <token>`; never logged. */
  token?: string;
  /** Per attempt (one URL), for the whole exchange. */
  timeoutMs: number;
  logger: Logger;
  /** undici dispatcher (an Agent with custom options, a MockAgent in tests); undici's global one by default. */
  dispatcher?: Dispatcher;
}

const maxBodyBytes = 1024 * 1024;

interface Answer {
  status: number;
  text: string;
  /** The body was larger than maxBodyBytes and was not read to the end. */
  tooLarge?: boolean;
}

/** Marks an abort caused by our own timeout, as opposed to the caller's signal. */
class AttemptTimeout extends Error {}

export function createCoordinatorClient(options: CoordinatorClientOptions): CoordinatorClient {
  const { token, timeoutMs, logger, dispatcher } = options;
  if (options.urls.length === 0) throw new BatonError('COORDINATOR_NO_URL', 'at least one coordinator URL is needed');
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new RangeError('timeoutMs must be positive');
  const bases = options.urls.map((url) => url.replace(/\/+$/, ''));
  // Logged instead of the URL itself: a URL could carry credentials.
  const origins = bases.map((base) => {
    try {
      return new URL(base).origin;
    } catch {
      throw new BatonError('COORDINATOR_URL_INVALID', `invalid coordinator URL: ${JSON.stringify(base)}`);
    }
  });
  let preferred = 0;

  const headers: Record<string, string> = {
    accept: 'application/json',
    'content-type': 'application/json',
    'user-agent': 'baton-agent',
  };
  if (token !== undefined) headers.authorization = `Bearer ${token}`;

  /** One attempt against one URL: resolves with the answer, or rejects (network, timeout, caller abort). */
  async function attempt(base: string, route: ApiRoute, path: string, body: unknown, signal: AbortSignal | undefined): Promise<Answer> {
    const bounded = linkAbort(signal);
    const timer = setTimeout(() => bounded.abort(new AttemptTimeout(`timed out after ${timeoutMs} ms`)), timeoutMs);
    try {
      const response = await request(base + path, {
        method: route.method,
        headers,
        body: JSON.stringify(body),
        signal: bounded.signal,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        ...(dispatcher ? { dispatcher } : {}),
      });
      let size = 0;
      const chunks: Buffer[] = [];
      for await (const chunk of response.body as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > maxBodyBytes) {
          response.body.destroy();
          return { status: response.statusCode, text: '', tooLarge: true };
        }
        chunks.push(chunk);
      }
      return { status: response.statusCode, text: Buffer.concat(chunks).toString('utf8') };
    } catch (err) {
      if (bounded.signal.reason instanceof AttemptTimeout) throw bounded.signal.reason;
      throw err;
    } finally {
      clearTimeout(timer);
      bounded.dispose();
    }
  }

  /** Sends to the preferred URL, then the others in order while they are unavailable. */
  async function send<R extends ApiRoute>(route: R, request: RouteRequest<R>, signal: AbortSignal | undefined): Promise<Answer> {
    const operation = route.name;
    const path = pathOf(route, request);
    const attempts: CoordinatorUnavailableError['attempts'] = [];
    let lastCause: unknown;
    for (let i = 0; i < bases.length; i++) {
      if (signal?.aborted) throw signal.reason;
      const index = (preferred + i) % bases.length;
      const base = bases[index] ?? '';
      const url = origins[index] ?? '';
      const startedAt = performance.now();
      let answer: Answer;
      try {
        answer = await attempt(base, route, path, request.body, signal);
      } catch (err) {
        if (signal?.aborted) throw signal.reason;
        lastCause = err;
        const reason = err instanceof AttemptTimeout ? err.message : describeNetworkError(err);
        attempts.push({ url, status: undefined, reason });
        logger.warn({ operation, url, reason, tryingNext: i + 1 < bases.length }, 'coordinator unavailable');
        continue;
      }
      const ms = Math.round(performance.now() - startedAt);
      if (answer.status >= 500) {
        attempts.push({ url, status: answer.status, reason: `answered ${answer.status}` });
        logger.warn(
          { operation, url, status: answer.status, ms, tryingNext: i + 1 < bases.length },
          'coordinator unavailable',
        );
        continue;
      }
      if (index !== preferred) logger.info({ operation, url }, 'coordinator failover: now using this URL first');
      preferred = index;
      logger.debug({ operation, url, status: answer.status, ms }, 'coordinator answered');
      return answer;
    }
    throw new CoordinatorUnavailableError(operation, attempts, { cause: lastCause });
  }

  function parseJson(operation: string, answer: Answer): unknown {
    if (answer.tooLarge) {
      throw new CoordinatorProtocolError(operation, answer.status, '(body)', `larger than ${maxBodyBytes} bytes`);
    }
    try {
      return JSON.parse(answer.text) as unknown;
    } catch {
      throw new CoordinatorProtocolError(operation, answer.status, '(body)', 'not JSON');
    }
  }

  function validate<S extends z.ZodType>(operation: string, answer: Answer, schema: S, json: unknown): z.output<S> {
    const result = schema.safeParse(json);
    if (result.success) return result.data;
    const issue = result.error.issues[0];
    const field = issue && issue.path.length > 0 ? issue.path.map(String).join('.') : '(root)';
    throw new CoordinatorProtocolError(operation, answer.status, field, issue?.message ?? 'does not match the schema');
  }

  /** The error body of a 4xx, when it is one. */
  function errorBody(answer: Answer): ErrorResponse | undefined {
    try {
      const result = errorResponseSchema.safeParse(JSON.parse(answer.text));
      return result.success ? result.data : undefined;
    } catch {
      return undefined;
    }
  }

  function rejected(operation: string, answer: Answer): CoordinatorRejectedError {
    return new CoordinatorRejectedError(operation, answer.status, errorBody(answer), answer.text);
  }

  /** renew and release: 2xx is the answer, 404 and 409 stale-token/lease-ended mean the lease is lost. */
  async function leaseCall<R extends typeof apiRoutes.renew | typeof apiRoutes.release>(
    route: R,
    request: RouteRequest<R>,
    signal: AbortSignal | undefined,
  ): Promise<RouteAnswer<R>> {
    const operation = route.name;
    const leaseId = request.params.leaseId;
    const answer = await send(route, request, signal);
    if (answer.status >= 200 && answer.status < 300) {
      return validate(operation, answer, route.response, parseJson(operation, answer)) as RouteAnswer<R>;
    }
    if (answer.status === 404) {
      throw new LeaseLostError(leaseId, 'not-found', operation, errorBody(answer)?.message);
    }
    if (answer.status === 409) {
      const error = errorBody(answer);
      if (error?.error === 'stale-token' || error?.error === 'lease-ended') {
        throw new LeaseLostError(leaseId, error.error, operation, error.message);
      }
    }
    throw rejected(operation, answer);
  }

  return {
    async heartbeat(nodeId: string, body: HeartbeatRequest, signal?: AbortSignal): Promise<HeartbeatResponse> {
      const route = apiRoutes.heartbeat;
      const answer = await send(route, { params: { nodeId }, body }, signal);
      if (answer.status >= 200 && answer.status < 300) {
        return validate(route.name, answer, route.response, parseJson(route.name, answer));
      }
      // 404 (unknown node or group) included: the node cannot fix it by retrying the same heartbeat.
      throw rejected(route.name, answer);
    },

    async acquire(body: LeaseRequest, signal?: AbortSignal): Promise<LeaseDecision> {
      const route = apiRoutes.acquire;
      const answer = await send(route, { body }, signal);
      if ((answer.status >= 200 && answer.status < 300) || answer.status === 409) {
        const json = parseJson(route.name, answer);
        // A 409 that is an error body rather than a refusal is a rejection, not a decision.
        if (answer.status === 409 && isErrorBody(json)) throw rejected(route.name, answer);
        const decision = validate(route.name, answer, route.response, json);
        if (answer.status === 409 && decision.granted) {
          throw new CoordinatorProtocolError(route.name, answer.status, 'granted', 'a 409 answer must be a refusal');
        }
        return decision;
      }
      throw rejected(route.name, answer);
    },

    renew(leaseId: string, fencingToken: number, signal?: AbortSignal): Promise<RenewResponse> {
      return leaseCall(apiRoutes.renew, { params: { leaseId }, body: { fencingToken } }, signal);
    },

    release(leaseId: string, body: ReleaseRequest, signal?: AbortSignal): Promise<ReleaseResponse> {
      return leaseCall(apiRoutes.release, { params: { leaseId }, body }, signal);
    },
  };
}

function isErrorBody(json: unknown): boolean {
  return typeof json === 'object' && json !== null && !('granted' in json) && errorResponseSchema.safeParse(json).success;
}

function describeNetworkError(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === 'string' ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}
