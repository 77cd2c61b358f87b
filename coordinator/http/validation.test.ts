import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  apiRoutes,
  errorResponseSchema,
  groupActionRoutes,
  leaseGrantSchema,
  maxEncodedParamLength,
  pathOf,
  statusResponseSchema,
  type ApiRoute,
} from '../../shared/api/v1.js';
import type { Coordinator } from '../build.js';
import { buildTestCoordinator } from '../testing/coordinator.js';

const agentToken = 'agent-token-0123456789';
const adminToken = 'admin-token-0123456789';
const v1 = `sha256:${'1'.repeat(64)}`;
const v2 = `sha256:${'2'.repeat(64)}`;

const heartbeat = (overrides: Record<string, unknown> = {}) => ({
  group: 'web',
  host: 'web-1.example.com',
  image: '127.0.0.1:5000/app:latest',
  currentDigest: v1,
  health: 'healthy',
  step: 'idle',
  agentVersion: '0.1.0',
  ...overrides,
});

describe('the coordinator over HTTP takes every value the schemas allow, and refuses control characters', () => {
  let dir: string;
  let coordinator: Coordinator;
  let base: string;

  const call = async (route: ApiRoute, request: { params?: Record<string, string>; query?: Record<string, string>; body?: unknown }, token = adminToken) => {
    const response = await fetch(`${base}${pathOf(route, request)}`, {
      method: route.method,
      headers: { authorization: `Bearer ${token}`, ...(request.body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(request.body !== undefined ? { body: JSON.stringify(request.body) } : {}),
    });
    return { status: response.status, body: (await response.json()) as unknown };
  };
  const status = async () => statusResponseSchema.parse((await call(apiRoutes.status, {})).body);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'baton-validation-'));
    const auth = { agentTokens: [agentToken], adminToken, publicStatus: false };
    coordinator = await buildTestCoordinator(join(dir, 'baton.db'), { config: { auth } });
    const { host, port } = await coordinator.listen({ host: '127.0.0.1', port: 0 });
    base = `http://${host}:${port}`;
  });
  afterAll(async () => {
    await coordinator.close();
    rmSync(dir, { recursive: true, force: true });
  });

  // A fully qualified domain name of the longest kind, and one whose every character encodes to 9 (`%E2%80%A6`).
  it.each([
    ['a 253-character FQDN', `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`],
    ['253 characters of 3 UTF-8 bytes each', '…'.repeat(253)],
  ])('takes %s as a node id: heartbeat, lease, renew, release, drain, undrain, forget', async (_name, nodeId) => {
    expect(nodeId).toHaveLength(253);
    expect(encodeURIComponent(nodeId).length).toBeLessThanOrEqual(maxEncodedParamLength);
    const params = { nodeId };
    expect((await call(apiRoutes.heartbeat, { params, body: heartbeat() }, agentToken)).status).toBe(200);

    const acquired = await call(apiRoutes.acquire, { body: { nodeId, group: 'web', targetDigest: v2, observedAfterSeq: 0 } }, agentToken);
    expect(acquired.status).toBe(200);
    const grant = leaseGrantSchema.parse(acquired.body);
    expect(grant.nodeId).toBe(nodeId);
    const lease = { leaseId: grant.leaseId };
    expect((await call(apiRoutes.renew, { params: lease, body: { fencingToken: grant.fencingToken } }, agentToken)).status).toBe(200);
    const released = await call(apiRoutes.release, { params: lease, body: { fencingToken: grant.fencingToken, outcome: 'updated' } }, agentToken);
    expect(released.status).toBe(200);
    expect((await call(apiRoutes.heartbeat, { params, body: heartbeat({ currentDigest: v2 }) }, agentToken)).status).toBe(200);

    expect((await call(apiRoutes.drain, { params, body: { reason: 'maintenance' } })).status).toBe(200);
    expect((await call(apiRoutes.undrain, { params, body: {} })).status).toBe(200);
    const forgotten = await call(apiRoutes.forget, { params });
    expect(forgotten).toEqual({ status: 200, body: { nodeId, groups: ['web'] } });
    expect((await status()).groups.flatMap((group) => group.nodes)).toEqual([]);
  });

  it('takes a 128-character group name in the path', async () => {
    const group = 'g'.repeat(128);
    expect((await call(apiRoutes.heartbeat, { params: { nodeId: 'n1' }, body: heartbeat({ group }) }, agentToken)).status).toBe(200);
    expect((await call(groupActionRoutes.pause, { params: { group }, body: { reason: 'freeze' } })).status).toBe(200);
    expect((await call(groupActionRoutes.resume, { params: { group } })).status).toBe(200);
    expect((await call(apiRoutes.forget, { params: { nodeId: 'n1' } })).status).toBe(200);
  });

  it('refuses a node id one character too long naming the path field, and one longer than any valid id from the catalogue', async () => {
    const tooLong = await call(apiRoutes.heartbeat, { params: { nodeId: 'a'.repeat(254) }, body: heartbeat() }, agentToken);
    expect(tooLong.status).toBe(400);
    expect(errorResponseSchema.parse(tooLong.body)).toMatchObject({ error: 'bad-request', field: 'path.nodeId' });
    const beyondRouter = await call(apiRoutes.heartbeat, { params: { nodeId: 'a'.repeat(maxEncodedParamLength + 1) }, body: heartbeat() }, agentToken);
    expect(beyondRouter.status).toBe(400);
    expect(errorResponseSchema.parse(beyondRouter.body)).toMatchObject({ error: 'bad-request', field: 'path' });
    expect((await status()).groups.flatMap((group) => group.nodes)).toEqual([]);
  });

  it.each([
    ['an escape sequence', 'web-1\u001b[2J'],
    ['a newline', 'web-1\nweb-2'],
    ['a C1 control (CSI)', 'web-1\u009b2J'],
    ['a bidi override', 'web-1\u202eevil'],
    ['a bidi isolate', 'web-1\u2066x'],
  ])('refuses %s in every free-text field, naming it, and stores nothing', async (_name, text) => {
    const before = await status();
    const eventsBefore = await call(apiRoutes.events, { query: { limit: '1000' } });

    const refusals: [string, { status: number; body: unknown }][] = [
      ['body.host', await call(apiRoutes.heartbeat, { params: { nodeId: 'web-1' }, body: heartbeat({ host: text }) }, agentToken)],
      ['body.agentVersion', await call(apiRoutes.heartbeat, { params: { nodeId: 'web-1' }, body: heartbeat({ agentVersion: text }) }, agentToken)],
      ['body.configProblem', await call(apiRoutes.heartbeat, { params: { nodeId: 'web-1' }, body: heartbeat({ configProblem: text }) }, agentToken)],
      ['path.nodeId', await call(apiRoutes.heartbeat, { params: { nodeId: text }, body: heartbeat() }, agentToken)],
      ['body.group', await call(apiRoutes.heartbeat, { params: { nodeId: 'web-1' }, body: heartbeat({ group: text }) }, agentToken)],
      ['body.message', await call(apiRoutes.release, { params: { leaseId: 'l1' }, body: { fencingToken: 1, outcome: 'failed', message: text } }, agentToken)],
      ['body.reason', await call(groupActionRoutes.pause, { params: { group: 'web' }, body: { reason: text } })],
      ['body.reason', await call(apiRoutes.drain, { params: { nodeId: 'web-1' }, body: { reason: text } })],
    ];
    for (const [field, answer] of refusals) {
      expect(answer.status, field).toBe(400);
      const error = errorResponseSchema.parse(answer.body);
      expect(error.field, field).toBe(field);
      expect(error.message).toContain('must not contain control characters');
    }
    expect(await status()).toEqual({ ...before, serverTimeMs: expect.any(Number) as number });
    expect(await call(apiRoutes.events, { query: { limit: '1000' } })).toEqual(eventsBefore);
  });

  it('takes spaces and any other printable text', async () => {
    const host = 'rack 4 · ünïcödé 主机 🚀';
    expect((await call(apiRoutes.heartbeat, { params: { nodeId: 'web 1' }, body: heartbeat({ host }) }, agentToken)).status).toBe(200);
    expect((await status()).groups.flatMap((group) => group.nodes).find((node) => node.nodeId === 'web 1')?.host).toBe(host);
    expect((await call(apiRoutes.forget, { params: { nodeId: 'web 1' } })).status).toBe(200);
  });
});
