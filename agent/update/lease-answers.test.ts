import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { apiRoutes, type LeaseGrant, type LeaseRequest } from '../../shared/api/v1.js';
import { silentLogger } from '../../shared/logger.js';
import { createCoordinatorClient } from '../coordinator/client.js';
import { maxRefusalRetryMs, minRefusalRetryMs } from './lease-requests.js';
import { createFakeWorld, NEW_DIGEST, OLD_DIGEST, settle, type FakeWorldOptions } from './testing/fakes.js';
import { runUpdate } from './updater.js';

/**
 * The agent acts only on lease answers about what it asked for: a grant for another node, group or
 * digest, or a renew or release answer about another lease, is a protocol error that changes
 * nothing on the node. And a refusal's retryAfterMs is bounded whatever the coordinator says.
 */

function world(options: FakeWorldOptions = {}) {
  const w = createFakeWorld({ imagePresent: true, ...options });
  const run = () => settle(w.clock, runUpdate(w.deps, w.service, w.target));
  const errors = () => w.lines.filter((l) => l.level === 'error').map((l) => String(l.msg));
  const containers = () => w.runtime.list().map((c) => ({ name: c.name, digest: c.digest, running: c.running }));
  return { ...w, run, errors, containers };
}

function grantFor(w: ReturnType<typeof world>, overrides: Partial<LeaseGrant>): LeaseGrant {
  return {
    granted: true,
    leaseId: 'lease-x',
    fencingToken: 42,
    group: w.service.group,
    nodeId: w.deps.nodeId,
    targetDigest: w.target.digest,
    rolloutId: 'rollout-1',
    rolloutSeq: 1,
    ttlMs: 30_000,
    expiresAtMs: w.clock.nowMs() + 30_000,
    ...overrides,
  };
}

describe('runUpdate: a grant that is not for this request', () => {
  it.each([
    ['another node', { nodeId: 'node-2' }, 'nodeId'],
    ['another group', { group: 'api' }, 'group'],
    ['another digest', { targetDigest: OLD_DIGEST }, 'targetDigest'],
  ] as const)('a grant for %s: a protocol error, logged; nothing changed, nothing released', async (_, overrides, field) => {
    const w = world();
    w.coordinator.acquireScript.push(grantFor(w, overrides));
    const result = await w.run();
    expect(result).toMatchObject({ outcome: 'error', release: 'none', runningDigest: OLD_DIGEST });
    expect(result.reason).toContain(`invalid body at ${field}`);
    expect(w.runtime.mutations()).toEqual([]);
    expect(w.journal.snapshot()).toEqual([]);
    expect(w.readiness.status('web')).toBe(200);
    expect(w.coordinator.calls.filter((c) => c.op !== 'acquire')).toEqual([]);
    expect(w.errors()).toEqual(['the coordinator granted a lease this node did not ask for; ignoring it']);
    expect(w.lines.find((l) => l.level === 'error')).toMatchObject({ err: { code: 'COORDINATOR_PROTOCOL' } });
  });

  it('a grant that matches goes ahead (the checks compare, they do not refuse every grant)', async () => {
    const w = world();
    w.coordinator.acquireScript.push(grantFor(w, {}));
    expect((await w.run()).outcome).toBe('updated');
  });
});

describe('runUpdate: renew and release answers about another lease', () => {
  it.each([
    ['lease id', { leaseId: 'lease-other' }],
    ['fencing token', { fencingToken: 9_999 }],
  ] as const)('a renew answered for another %s: the lease is in doubt, the flow stops before the stop', async (_, answer) => {
    // TTL 9 s: the first renew (at 3 s) falls in the 10 s drain, before any destructive step.
    const w = world();
    w.coordinator.ttlMs = 9_000;
    w.coordinator.renewScript.push({ answer });
    const result = await w.run();
    expect(result).toMatchObject({ outcome: 'lease-lost', runningDigest: OLD_DIGEST });
    expect(result.reason).toContain('in doubt');
    expect(w.runtime.mutations()).toEqual([]);
    expect(w.containers()).toEqual([{ name: 'web', digest: OLD_DIGEST, running: true }]);
    expect(w.readiness.status('web')).toBe(200);
    expect(w.errors()).toContain('renew answered for another lease');
  });

  it('a release answered for another lease: not-released, logged, not retried', async () => {
    const w = world();
    w.coordinator.releaseAnswer = { leaseId: 'lease-other' };
    const result = await w.run();
    expect(result).toMatchObject({ outcome: 'updated', release: 'not-released', runningDigest: NEW_DIGEST });
    expect(w.coordinator.calls.filter((c) => c.op === 'release')).toHaveLength(1);
    expect(w.errors()).toEqual(['release answered with a protocol error; not retried']);
  });
});

describe('runUpdate: retryAfterMs is bounded', () => {
  it.each([
    [0, minRefusalRetryMs],
    [1, minRefusalRetryMs],
    [2_000, 2_000],
    [24 * 3_600_000, maxRefusalRetryMs],
  ])('a refusal with retryAfterMs %i is asked again after %i ms plus half of it in jitter', async (retryAfterMs, boundedMs) => {
    const w = world();
    w.coordinator.acquireScript.push({ refuse: 'busy', retryAfterMs });
    expect((await w.run()).outcome).toBe('updated');
    const times = w.coordinator.calls.filter((c) => c.op === 'acquire').map((c) => c.atMs);
    // fixedRandom(0.5): jitter is a quarter of the bounded wait. The fake clock moves in 100 ms steps.
    const expected = boundedMs * 1.25;
    expect(times).toHaveLength(2);
    expect((times[1] as number) - (times[0] as number)).toBeGreaterThanOrEqual(expected);
    expect((times[1] as number) - (times[0] as number)).toBeLessThan(expected + 100);
  });

  it('the bounds: at least 100 ms, at most 5 minutes', () => {
    expect([minRefusalRetryMs, maxRefusalRetryMs]).toEqual([100, 300_000]);
  });
});

describe('the real coordinator client against a coordinator that grants another node its lease', () => {
  let stub: FastifyInstance | undefined;
  afterEach(async () => {
    await stub?.close();
    stub = undefined;
  });

  it('the update ends before drain: a protocol error naming nodeId, nothing changed on the node', async () => {
    const w = world();
    const requests: LeaseRequest[] = [];
    stub = Fastify();
    stub.post(apiRoutes.acquire.path, (request, reply) => {
      const body = apiRoutes.acquire.body.parse(request.body);
      requests.push(body);
      const grant: LeaseGrant = {
        granted: true,
        leaseId: 'lease-of-node-2',
        fencingToken: 5,
        group: body.group,
        nodeId: 'node-2',
        targetDigest: body.targetDigest,
        rolloutId: 'rollout-1',
        rolloutSeq: 1,
        ttlMs: 30_000,
        expiresAtMs: Date.now() + 30_000,
      };
      return reply.code(200).send(grant);
    });
    const address = await stub.listen({ host: '127.0.0.1', port: 0 });
    const coordinator = createCoordinatorClient({ urls: [address], timeoutMs: 2_000, logger: silentLogger() });

    const result = await settle(w.clock, runUpdate({ ...w.deps, coordinator }, w.service, w.target));

    expect(requests).toEqual([expect.objectContaining({ nodeId: 'node-1', group: 'web', targetDigest: NEW_DIGEST })]);
    expect(result).toMatchObject({ outcome: 'error', release: 'none', runningDigest: OLD_DIGEST });
    expect(result.reason).toMatch(/coordinator answered acquire with 200 and an invalid body at nodeId: answers for "node-2", but the request was for "node-1"/);
    expect(w.runtime.mutations()).toEqual([]);
    expect(w.journal.snapshot()).toEqual([]);
    expect(w.errors()).toEqual(['the coordinator granted a lease this node did not ask for; ignoring it']);
  });
});
