import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  errorResponseSchema,
  heartbeatResponseSchema,
  leaseGrantSchema,
  leaseRefusalSchema,
  statusResponseSchema,
} from '../../shared/api/v1.js';
import { startInProcessCoordinator, type InProcessCoordinator } from '../../tools/fleet/coordinator.js';
import { call, digestOf, snapshotDatabase } from '../../tools/fleet/http.js';

const v1 = digestOf('v1');
const v2 = digestOf('v2');
const v3 = digestOf('v3');

function heartbeat(nodeId: string, overrides: Record<string, unknown> = {}) {
  return {
    group: 'web',
    host: `${nodeId}.local`,
    image: '127.0.0.1:5000/app:latest',
    currentDigest: v1,
    health: 'healthy',
    step: 'idle',
    agentVersion: '0.1.0',
    ...overrides,
  };
}

async function join(url: string, nodeIds: string[], token?: string): Promise<void> {
  for (const nodeId of nodeIds) {
    const answer = await call(url, 'POST', `/v1/nodes/${nodeId}/heartbeat`, {
      json: heartbeat(nodeId),
      ...(token ? { token } : {}),
    });
    expect(answer.status).toBe(200);
    heartbeatResponseSchema.parse(answer.body);
  }
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 400));

describe('coordinator HTTP API', () => {
  let coordinator: InProcessCoordinator;

  beforeAll(async () => {
    coordinator = await startInProcessCoordinator({ config: { bodyLimitBytes: 4_096 } });
  });
  afterAll(async () => coordinator.stop({ removeData: true }));

  it('grants one lease, refuses the next as busy, and hands the slot on after release', async () => {
    await join(coordinator.url, ['a', 'b', 'c']);
    const first = await call(coordinator.url, 'POST', '/v1/leases', { json: { nodeId: 'a', group: 'web', targetDigest: v2 } });
    expect(first.status).toBe(200);
    const grant = leaseGrantSchema.parse(first.body);

    const second = await call(coordinator.url, 'POST', '/v1/leases', { json: { nodeId: 'b', group: 'web', targetDigest: v2 } });
    expect(second.status).toBe(409);
    expect(leaseRefusalSchema.parse(second.body).reason).toBe('busy');
    expect(second.headers['retry-after']).toBeDefined();

    const renewed = await call(coordinator.url, 'POST', `/v1/leases/${grant.leaseId}/renew`, {
      json: { fencingToken: grant.fencingToken },
    });
    expect(renewed.status).toBe(200);

    const released = await call(coordinator.url, 'POST', `/v1/leases/${grant.leaseId}/release`, {
      json: { fencingToken: grant.fencingToken, outcome: 'updated' },
    });
    expect(released.status).toBe(200);

    const third = await call(coordinator.url, 'POST', '/v1/leases', { json: { nodeId: 'b', group: 'web', targetDigest: v2 } });
    expect(third.status).toBe(200);
    const next = leaseGrantSchema.parse(third.body);
    expect(next.fencingToken).toBeGreaterThan(grant.fencingToken);

    // The old lease is over: renewing or releasing it again is a conflict that changes nothing.
    const late = await call(coordinator.url, 'POST', `/v1/leases/${grant.leaseId}/release`, {
      json: { fencingToken: grant.fencingToken, outcome: 'updated' },
    });
    expect(late.status).toBe(409);
    expect(errorResponseSchema.parse(late.body).error).toBe('lease-ended');

    const stale = await call(coordinator.url, 'POST', `/v1/leases/${next.leaseId}/renew`, {
      json: { fencingToken: grant.fencingToken },
    });
    expect(stale.status).toBe(409);
    expect(errorResponseSchema.parse(stale.body).error).toBe('stale-token');

    await call(coordinator.url, 'POST', `/v1/leases/${next.leaseId}/release`, {
      json: { fencingToken: next.fencingToken, outcome: 'failed', message: 'health check timed out' },
    });
    const status = statusResponseSchema.parse((await call(coordinator.url, 'GET', '/v1/status')).body);
    const web = status.groups.find((group) => group.name === 'web');
    expect(web?.rollout?.state).toBe('halted');
    expect(web?.rollout?.haltedByNodeId).toBe('b');

    // A halted digest is never granted again; a newer one fixes forward.
    const again = await call(coordinator.url, 'POST', '/v1/leases', { json: { nodeId: 'c', group: 'web', targetDigest: v2 } });
    expect(leaseRefusalSchema.parse(again.body).reason).toBe('halted');
    const forward = await call(coordinator.url, 'POST', '/v1/leases', { json: { nodeId: 'c', group: 'web', targetDigest: v3 } });
    expect(forward.status).toBe(200);
  });

  it('pauses, resumes and aborts a group rollout', async () => {
    await join(coordinator.url, ['p1', 'p2'].map((id) => id));
    const group = 'web';
    const paused = await call(coordinator.url, 'POST', `/v1/groups/${group}/pause`, { json: { reason: 'look first' } });
    expect(paused.status).toBe(200);
    const heartbeatAnswer = await call(coordinator.url, 'POST', '/v1/nodes/p1/heartbeat', { json: heartbeat('p1') });
    expect(heartbeatResponseSchema.parse(heartbeatAnswer.body).paused).toBe(true);
    const resumed = await call(coordinator.url, 'POST', `/v1/groups/${group}/resume`);
    expect(resumed.status).toBe(200);
    const unknown = await call(coordinator.url, 'POST', '/v1/groups/nope/pause');
    expect(unknown.status).toBe(404);
  });
});

describe('bad input changes nothing stored', () => {
  let coordinator: InProcessCoordinator;
  let leaseId = '';
  let fencingToken = 0;

  beforeAll(async () => {
    coordinator = await startInProcessCoordinator({ config: { bodyLimitBytes: 4_096 } });
    await join(coordinator.url, ['n1', 'n2']);
    const grant = leaseGrantSchema.parse(
      (await call(coordinator.url, 'POST', '/v1/leases', { json: { nodeId: 'n1', group: 'web', targetDigest: v2 } })).body,
    );
    leaseId = grant.leaseId;
    fencingToken = grant.fencingToken;
    await settle();
  });
  afterAll(async () => coordinator.stop({ removeData: true }));

  const big = 'x'.repeat(10_000);
  type Case = {
    name: string;
    method: 'POST' | 'DELETE' | 'GET';
    path: () => string;
    json?: () => unknown;
    rawBody?: string;
    contentType?: string;
    status: number;
    field?: string;
  };
  const cases: Case[] = [
    { name: 'heartbeat: malformed JSON', method: 'POST', path: () => '/v1/nodes/n1/heartbeat', rawBody: '{"group":', status: 400 },
    { name: 'heartbeat: missing group', method: 'POST', path: () => '/v1/nodes/n1/heartbeat', json: () => ({ ...heartbeat('n1'), group: undefined }), status: 400, field: 'body.group' },
    { name: 'heartbeat: wrong health', method: 'POST', path: () => '/v1/nodes/n1/heartbeat', json: () => heartbeat('n1', { health: 'great' }), status: 400, field: 'body.health' },
    { name: 'heartbeat: bad digest', method: 'POST', path: () => '/v1/nodes/n1/heartbeat', json: () => heartbeat('n1', { currentDigest: 'sha256:nothex' }), status: 400, field: 'body.currentDigest' },
    { name: 'heartbeat: unknown field', method: 'POST', path: () => '/v1/nodes/n1/heartbeat', json: () => heartbeat('n1', { extra: 1 }), status: 400 },
    { name: 'heartbeat: body too large', method: 'POST', path: () => '/v1/nodes/n1/heartbeat', json: () => heartbeat('n1', { host: big }), status: 413 },
    { name: 'heartbeat: not JSON', method: 'POST', path: () => '/v1/nodes/n1/heartbeat', rawBody: 'hello', contentType: 'text/plain', status: 415 },
    { name: 'acquire: wrong type', method: 'POST', path: () => '/v1/leases', json: () => ({ nodeId: 5, group: 'web', targetDigest: v2 }), status: 400, field: 'body.nodeId' },
    { name: 'acquire: missing digest', method: 'POST', path: () => '/v1/leases', json: () => ({ nodeId: 'n2', group: 'web' }), status: 400, field: 'body.targetDigest' },
    { name: 'acquire: unknown node', method: 'POST', path: () => '/v1/leases', json: () => ({ nodeId: 'ghost', group: 'web', targetDigest: v2 }), status: 404 },
    { name: 'acquire: empty body', method: 'POST', path: () => '/v1/leases', status: 400 },
    { name: 'renew: unknown lease', method: 'POST', path: () => '/v1/leases/no-such-lease/renew', json: () => ({ fencingToken: 1 }), status: 404 },
    { name: 'renew: token not a number', method: 'POST', path: () => `/v1/leases/${leaseId}/renew`, json: () => ({ fencingToken: 'one' }), status: 400, field: 'body.fencingToken' },
    { name: 'renew: stale token', method: 'POST', path: () => `/v1/leases/${leaseId}/renew`, json: () => ({ fencingToken: fencingToken + 7 }), status: 409 },
    { name: 'release: bad outcome', method: 'POST', path: () => `/v1/leases/${leaseId}/release`, json: () => ({ fencingToken, outcome: 'great' }), status: 400, field: 'body.outcome' },
    { name: 'release: stale token', method: 'POST', path: () => `/v1/leases/${leaseId}/release`, json: () => ({ fencingToken: fencingToken + 7, outcome: 'updated' }), status: 409 },
    { name: 'release: unknown lease', method: 'POST', path: () => '/v1/leases/nope/release', json: () => ({ fencingToken: 1, outcome: 'updated' }), status: 404 },
    { name: 'pause: unknown group', method: 'POST', path: () => '/v1/groups/nope/pause', status: 404 },
    { name: 'pause: reason not a string', method: 'POST', path: () => '/v1/groups/web/pause', json: () => ({ reason: 3 }), status: 400, field: 'body.reason' },
    { name: 'abort: unknown group', method: 'POST', path: () => '/v1/groups/nope/abort', status: 404 },
    { name: 'forget: unknown node', method: 'DELETE', path: () => '/v1/nodes/ghost', status: 404 },
    { name: 'registry events: not an envelope', method: 'POST', path: () => '/v1/registry/events', json: () => ({ events: 'push' }), status: 400, field: 'body.events' },
    { name: 'registry events: malformed JSON', method: 'POST', path: () => '/v1/registry/events', rawBody: '[', status: 400 },
    { name: 'events: bad query', method: 'GET', path: () => '/v1/events?limit=zero', status: 400, field: 'query.limit' },
    { name: 'unknown route', method: 'GET', path: () => '/v1/nothing', status: 404 },
  ];

  it.each(cases)('$name → $status', async (testCase) => {
    const before = snapshotDatabase(coordinator.dataFile);
    const answer = await call(coordinator.url, testCase.method, testCase.path(), {
      ...(testCase.json ? { json: testCase.json() } : {}),
      ...(testCase.rawBody !== undefined ? { rawBody: testCase.rawBody } : {}),
      ...(testCase.contentType ? { contentType: testCase.contentType } : {}),
    });
    expect(answer.status, JSON.stringify(answer.body)).toBe(testCase.status);
    const error = errorResponseSchema.parse(answer.body);
    if (testCase.field) expect(error.field).toBe(testCase.field);
    await settle();
    expect(snapshotDatabase(coordinator.dataFile)).toBe(before);
  });
});

describe('authentication', () => {
  const agentToken = 'agent-token-0123456789';
  const adminToken = 'admin-token-0123456789';
  let coordinator: InProcessCoordinator;

  beforeAll(async () => {
    coordinator = await startInProcessCoordinator({ config: { auth: { agentTokens: [agentToken], adminToken } } });
  });
  afterEach(() => undefined);
  afterAll(async () => coordinator.stop({ removeData: true }));

  it('needs a token for agent calls, the admin token for admin calls, and none for /healthz', async () => {
    expect((await call(coordinator.url, 'GET', '/healthz')).status).toBe(200);
    expect((await call(coordinator.url, 'POST', '/v1/nodes/a/heartbeat', { json: heartbeat('a') })).status).toBe(401);
    expect(
      (await call(coordinator.url, 'POST', '/v1/nodes/a/heartbeat', { json: heartbeat('a'), token: 'wrong-token-0123456789' })).status,
    ).toBe(401);
    await join(coordinator.url, ['a'], agentToken);
    expect((await call(coordinator.url, 'GET', '/v1/status')).status).toBe(401);
    expect((await call(coordinator.url, 'GET', '/v1/status', { token: agentToken })).status).toBe(200);
    expect((await call(coordinator.url, 'POST', '/v1/groups/web/pause', { token: agentToken })).status).toBe(403);
    expect((await call(coordinator.url, 'POST', '/v1/groups/web/pause', { token: adminToken })).status).toBe(200);
    expect((await call(coordinator.url, 'POST', '/v1/groups/web/resume', { token: adminToken })).status).toBe(200);
  });
});
