import { Writable } from 'node:stream';
import { MockAgent } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { HeartbeatRequest, LeaseGrant, LeaseRefusal } from '../../shared/api/v1.js';
import { BatonError } from '../../shared/errors.js';
import { createLogger, silentLogger, type Logger } from '../../shared/logger.js';
import { createCoordinatorClient, type CoordinatorClientOptions } from './client.js';
import { CoordinatorProtocolError, CoordinatorRejectedError, CoordinatorUnavailableError, LeaseLostError } from './errors.js';

const A = 'http://127.0.0.1:7070';
const B = 'http://127.0.0.2:7070';
const TOKEN = 's3cret-agent-token';
const DIGEST = `sha256:${'a'.repeat(64)}`;

const grant: LeaseGrant = {
  granted: true,
  leaseId: 'lease-1',
  fencingToken: 7,
  group: 'web',
  nodeId: 'web-1',
  targetDigest: DIGEST,
  rolloutId: 'r-1',
  rolloutSeq: 1,
  ttlMs: 30_000,
  expiresAtMs: 1_700_000_030_000,
};
const refusal: LeaseRefusal = { granted: false, reason: 'busy', retryAfterMs: 5_000, message: 'web-2 holds the lease', rolloutSeq: 1 };
const leaseRequest = { nodeId: 'web-1', group: 'web', targetDigest: DIGEST };
const heartbeat: HeartbeatRequest = {
  group: 'web',
  host: '127.0.0.11',
  image: '127.0.0.1:5000/app:latest',
  currentDigest: DIGEST,
  health: 'healthy',
  step: 'idle',
  agentVersion: '0.1.0',
};
const heartbeatAnswer = {
  pollNow: false,
  paused: false,
  heartbeatIntervalMs: 5_000,
  targetDigest: null,
  rolloutState: null,
  rolloutSeq: 3,
  rolledBackFrom: null,
};
const json = { headers: { 'content-type': 'application/json' } };

let agent: MockAgent;

beforeEach(() => {
  agent = new MockAgent();
  agent.disableNetConnect();
});

afterEach(async () => {
  await agent.close();
});

function client(overrides: Partial<CoordinatorClientOptions> = {}) {
  return createCoordinatorClient({
    urls: [A],
    token: TOKEN,
    timeoutMs: 1_000,
    logger: silentLogger(),
    dispatcher: agent,
    ...overrides,
  });
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

describe('coordinator client', () => {
  it('acquire: a 200 grant, with JSON body and the bearer token', async () => {
    const seen: { headers: unknown; body: unknown; path: string }[] = [];
    agent
      .get(A)
      .intercept({ path: '/v1/leases', method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } })
      .reply((opts) => {
        seen.push({ headers: opts.headers, body: opts.body, path: opts.path });
        return { statusCode: 200, data: grant, responseOptions: json };
      });
    await expect(client().acquire(leaseRequest)).resolves.toEqual(grant);
    expect(seen).toHaveLength(1);
    const headers = seen[0]?.headers as Record<string, string>;
    expect(headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(headers['content-type']).toBe('application/json');
    expect(JSON.parse(String(seen[0]?.body))).toEqual(leaseRequest);
  });

  it('acquire: a 409 refusal is a decision, not an error', async () => {
    agent.get(A).intercept({ path: '/v1/leases', method: 'POST' }).reply(409, refusal, json);
    await expect(client().acquire(leaseRequest)).resolves.toEqual(refusal);
  });

  it('acquire: a 409 error body is a rejection; a 409 grant is a protocol error', async () => {
    agent
      .get(A)
      .intercept({ path: '/v1/leases', method: 'POST' })
      .reply(409, { error: 'conflict', message: 'node belongs to another group' }, json);
    const err = await rejection(client().acquire(leaseRequest));
    expect(err).toBeInstanceOf(CoordinatorRejectedError);
    expect(err).toMatchObject({ status: 409, body: { error: 'conflict' } });

    agent.get(A).intercept({ path: '/v1/leases', method: 'POST' }).reply(409, grant, json);
    await expect(client().acquire(leaseRequest)).rejects.toMatchObject({ code: 'COORDINATOR_PROTOCOL', field: 'granted' });
  });

  it('a malformed response is a CoordinatorProtocolError naming the field', async () => {
    agent
      .get(A)
      .intercept({ path: '/v1/leases', method: 'POST' })
      .reply(200, { ...grant, fencingToken: 'seven' }, json);
    const err = await rejection(client().acquire(leaseRequest));
    expect(err).toBeInstanceOf(CoordinatorProtocolError);
    expect(err).toBeInstanceOf(BatonError);
    expect(err).toMatchObject({ field: 'fencingToken', status: 200, operation: 'acquire' });
    expect((err as Error).message).toContain('fencingToken');

    agent.get(A).intercept({ path: '/v1/nodes/web-1/heartbeat', method: 'POST' }).reply(200, { pollNow: true }, json);
    await expect(client().heartbeat('web-1', heartbeat)).rejects.toMatchObject({
      name: 'CoordinatorProtocolError',
      field: 'paused',
    });
  });

  it('a body that is not JSON is a protocol error', async () => {
    agent.get(A).intercept({ path: '/v1/leases', method: 'POST' }).reply(200, '<html>proxy</html>');
    await expect(client().acquire(leaseRequest)).rejects.toMatchObject({ code: 'COORDINATOR_PROTOCOL', field: '(body)' });
  });

  it('heartbeat: validated answer; 404 is a CoordinatorRejectedError', async () => {
    const answer = { ...heartbeatAnswer, pollNow: true, targetDigest: DIGEST, rolloutState: 'in-progress' };
    agent
      .get(A)
      .intercept({ path: '/v1/nodes/web%201/heartbeat', method: 'POST' })
      .reply(200, answer, json);
    // A coordinator that knows no drains leaves `drained` out: not drained.
    await expect(client().heartbeat('web 1', heartbeat)).resolves.toEqual({ ...answer, drained: null });
    const drained = { ...answer, drained: { reason: 'kernel upgrade', sinceMs: 1_000 } };
    agent.get(A).intercept({ path: '/v1/nodes/web%201/heartbeat', method: 'POST' }).reply(200, drained, json);
    await expect(client().heartbeat('web 1', heartbeat)).resolves.toEqual(drained);

    agent
      .get(A)
      .intercept({ path: '/v1/nodes/web-1/heartbeat', method: 'POST' })
      .reply(404, { error: 'not-found', message: 'unknown group' }, json);
    const err = await rejection(client().heartbeat('web-1', heartbeat));
    expect(err).toBeInstanceOf(CoordinatorRejectedError);
    expect(err).toMatchObject({ status: 404, body: { error: 'not-found', message: 'unknown group' } });
  });

  it('renew and release: answers validated, request bodies carry the fencing token', async () => {
    const bodies: unknown[] = [];
    agent
      .get(A)
      .intercept({ path: '/v1/leases/lease-1/renew', method: 'POST' })
      .reply((opts) => {
        bodies.push(JSON.parse(String(opts.body)));
        return { statusCode: 200, data: { leaseId: 'lease-1', fencingToken: 7, ttlMs: 30_000, expiresAtMs: 2 }, responseOptions: json };
      });
    agent
      .get(A)
      .intercept({ path: '/v1/leases/lease-1/release', method: 'POST' })
      .reply((opts) => {
        bodies.push(JSON.parse(String(opts.body)));
        return { statusCode: 200, data: { leaseId: 'lease-1', outcome: 'updated', rolloutState: 'in-progress' }, responseOptions: json };
      });
    const c = client();
    await expect(c.renew('lease-1', 7)).resolves.toMatchObject({ fencingToken: 7, ttlMs: 30_000 });
    await expect(c.release('lease-1', { fencingToken: 7, outcome: 'updated' })).resolves.toEqual({
      leaseId: 'lease-1',
      outcome: 'updated',
      rolloutState: 'in-progress',
    });
    expect(bodies).toEqual([{ fencingToken: 7 }, { fencingToken: 7, outcome: 'updated' }]);
  });

  it('renew 409 stale-token → LeaseLostError', async () => {
    agent
      .get(A)
      .intercept({ path: '/v1/leases/lease-1/renew', method: 'POST' })
      .reply(409, { error: 'stale-token', message: 'token 7 < 8' }, json);
    const err = await rejection(client().renew('lease-1', 7));
    expect(err).toBeInstanceOf(LeaseLostError);
    expect(err).toBeInstanceOf(BatonError);
    expect(err).toMatchObject({ name: 'LeaseLostError', code: 'LEASE_LOST', reason: 'stale-token', leaseId: 'lease-1' });
  });

  it('release 409 lease-ended and renew 404 → LeaseLostError; other 409 → rejected', async () => {
    const pool = agent.get(A);
    pool
      .intercept({ path: '/v1/leases/lease-1/release', method: 'POST' })
      .reply(409, { error: 'lease-ended', message: 'expired' }, json);
    pool.intercept({ path: '/v1/leases/lease-2/renew', method: 'POST' }).reply(404, { error: 'not-found', message: 'no such lease' }, json);
    pool.intercept({ path: '/v1/leases/lease-3/renew', method: 'POST' }).reply(409, { error: 'conflict', message: 'odd' }, json);
    const c = client();
    await expect(c.release('lease-1', { fencingToken: 7, outcome: 'failed' })).rejects.toMatchObject({
      name: 'LeaseLostError',
      reason: 'lease-ended',
      operation: 'release',
    });
    await expect(c.renew('lease-2', 7)).rejects.toMatchObject({ name: 'LeaseLostError', reason: 'not-found' });
    await expect(c.renew('lease-3', 7)).rejects.toMatchObject({ name: 'CoordinatorRejectedError', status: 409 });
  });

  it('other 4xx → CoordinatorRejectedError with the error body', async () => {
    agent
      .get(A)
      .intercept({ path: '/v1/leases', method: 'POST' })
      .reply(400, { error: 'bad-request', message: 'invalid', field: 'targetDigest' }, json);
    agent.get(A).intercept({ path: '/v1/leases', method: 'POST' }).reply(401, 'nope');
    const c = client();
    const err = await rejection(c.acquire(leaseRequest));
    expect(err).toBeInstanceOf(CoordinatorRejectedError);
    expect(err).toMatchObject({ code: 'COORDINATOR_REJECTED', status: 400, body: { field: 'targetDigest' } });
    expect((err as Error).message).toContain('targetDigest');
    await expect(c.acquire(leaseRequest)).rejects.toMatchObject({ status: 401, body: undefined });
  });

  it('5xx → CoordinatorUnavailableError', async () => {
    agent.get(A).intercept({ path: '/v1/leases', method: 'POST' }).reply(503, { error: 'internal', message: 'db' }, json);
    const err = await rejection(client().acquire(leaseRequest));
    expect(err).toBeInstanceOf(CoordinatorUnavailableError);
    expect(err).toMatchObject({ code: 'COORDINATOR_UNAVAILABLE', attempts: [{ url: A, status: 503 }] });
  });

  it('a network error → CoordinatorUnavailableError', async () => {
    agent
      .get(A)
      .intercept({ path: '/v1/leases/lease-1/renew', method: 'POST' })
      .replyWithError(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:7070'), { code: 'ECONNREFUSED' }));
    const err = await rejection(client().renew('lease-1', 7));
    expect(err).toBeInstanceOf(CoordinatorUnavailableError);
    expect((err as Error).message).toContain('ECONNREFUSED');
  });

  it('times out → CoordinatorUnavailableError', async () => {
    agent.get(A).intercept({ path: '/v1/leases', method: 'POST' }).reply(200, grant, json).delay(2_000);
    const startedAt = performance.now();
    const err = await rejection(client({ timeoutMs: 100 }).acquire(leaseRequest));
    expect(performance.now() - startedAt).toBeLessThan(1_500);
    expect(err).toBeInstanceOf(CoordinatorUnavailableError);
    expect((err as Error).message).toContain('timed out after 100 ms');
  });

  it('fails over to the second URL and remembers it', async () => {
    let callsToA = 0;
    agent
      .get(A)
      .intercept({ path: '/v1/leases', method: 'POST' })
      .reply(() => {
        callsToA++;
        return { statusCode: 502, data: 'bad gateway' };
      })
      .persist();
    agent.get(B).intercept({ path: '/v1/leases', method: 'POST' }).reply(200, grant, json).times(2);
    const c = client({ urls: [A, B] });
    await expect(c.acquire(leaseRequest)).resolves.toEqual(grant);
    expect(callsToA).toBe(1);
    await expect(c.acquire(leaseRequest)).resolves.toEqual(grant);
    expect(callsToA).toBe(1); // B answered last time: it is tried first now
    agent.assertNoPendingInterceptors();
  });

  it('fails over on a timeout, and reports every URL when all are down', async () => {
    agent.get(A).intercept({ path: '/v1/leases', method: 'POST' }).reply(200, grant, json).delay(2_000);
    agent.get(B).intercept({ path: '/v1/leases', method: 'POST' }).reply(200, refusal, json);
    const c = client({ urls: [A, `${B}/`], timeoutMs: 100 });
    await expect(c.acquire(leaseRequest)).resolves.toEqual(refusal);

    agent.get(B).intercept({ path: '/v1/leases', method: 'POST' }).reply(500, 'oops');
    agent.get(A).intercept({ path: '/v1/leases', method: 'POST' }).replyWithError(new Error('socket hang up'));
    const err = await rejection(c.acquire(leaseRequest));
    expect(err).toBeInstanceOf(CoordinatorUnavailableError);
    expect((err as CoordinatorUnavailableError).attempts.map((a) => a.url)).toEqual([B, A]);
  });

  it("the caller's abort is thrown as is, without trying the next URL", async () => {
    let callsToB = 0;
    agent.get(A).intercept({ path: '/v1/leases', method: 'POST' }).reply(200, grant, json).delay(2_000);
    agent
      .get(B)
      .intercept({ path: '/v1/leases', method: 'POST' })
      .reply(() => {
        callsToB++;
        return { statusCode: 200, data: grant, responseOptions: json };
      })
      .persist();
    const controller = new AbortController();
    const reason = new Error('agent shutting down');
    setTimeout(() => controller.abort(reason), 50);
    await expect(client({ urls: [A, B] }).acquire(leaseRequest, controller.signal)).rejects.toBe(reason);
    expect(callsToB).toBe(0);
    await expect(client({ urls: [A, B] }).acquire(leaseRequest, controller.signal)).rejects.toBe(reason);
  });

  it('sends no Authorization header without a token', async () => {
    let authorization: unknown = 'unset';
    agent
      .get(A)
      .intercept({ path: '/v1/leases', method: 'POST' })
      .reply((opts) => {
        authorization = (opts.headers as Record<string, string>).authorization;
        return { statusCode: 200, data: grant, responseOptions: json };
      });
    await client({ token: undefined }).acquire(leaseRequest);
    expect(authorization).toBeUndefined();
  });

  it('keeps a base path prefix', async () => {
    agent.get(A).intercept({ path: '/baton/v1/leases', method: 'POST' }).reply(200, grant, json);
    await expect(client({ urls: [`${A}/baton/`] }).acquire(leaseRequest)).resolves.toEqual(grant);
  });

  it('never logs the token', async () => {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        lines.push(chunk.toString());
        callback();
      },
    });
    const logger: Logger = createLogger({ name: 'agent', level: 'trace', destination });
    agent.get(A).intercept({ path: '/v1/leases', method: 'POST' }).reply(503, 'down');
    agent.get(B).intercept({ path: '/v1/leases', method: 'POST' }).reply(200, grant, json);
    agent.get(B).intercept({ path: '/v1/leases/lease-1/renew', method: 'POST' }).reply(409, { error: 'stale-token', message: 'x' }, json);
    const c = client({ urls: [A, B], logger });
    await c.acquire(leaseRequest);
    const err = await rejection(c.renew('lease-1', 7));
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.join('')).not.toContain(TOKEN);
    expect(JSON.stringify(err) + String(err)).not.toContain(TOKEN);
  });

  it('rejects bad options', () => {
    expect(() => client({ urls: [] })).toThrow(BatonError);
    expect(() => client({ urls: ['not a url'] })).toThrow(/invalid coordinator URL/);
    expect(() => client({ timeoutMs: 0 })).toThrow(RangeError);
  });
});
