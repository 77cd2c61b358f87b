import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorResponseSchema, leaseGrantSchema } from '../../shared/api/v1.js';
import { startInProcessCoordinator, type InProcessCoordinator } from '../../tools/fleet/coordinator.js';
import { sleep } from '../../tools/fleet/wait.js';
import { call, digestOf, snapshotDatabase } from '../../tools/fleet/http.js';

/** Lease expiry in real time (the rules' unit tests drive it with a manual clock). */
describe('a holder that stops renewing', () => {
  let coordinator: InProcessCoordinator;
  beforeAll(async () => {
    coordinator = await startInProcessCoordinator({ config: { leaseTtlMs: 1_000, heartbeatMissLimitMs: 60_000 } });
    for (const nodeId of ['quiet', 'next']) {
      await call(coordinator.url, 'POST', `/v1/nodes/${nodeId}/heartbeat`, {
        json: { group: 'ttl', host: nodeId, image: 'reg.local/app:1', currentDigest: digestOf('a'), health: 'healthy', agentVersion: 'test' },
      });
    }
  });
  afterAll(async () => coordinator.stop({ removeData: true }));

  it('loses the lease at its TTL, and its late release is refused and changes nothing', async () => {
    const target = digestOf('b');
    const grant = leaseGrantSchema.parse(
      (await call(coordinator.url, 'POST', '/v1/leases', { json: { nodeId: 'quiet', group: 'ttl', targetDigest: target } })).body,
    );
    const refused = await call(coordinator.url, 'POST', '/v1/leases', { json: { nodeId: 'next', group: 'ttl', targetDigest: target } });
    expect(refused.status).toBe(409);

    await sleep(1_400);
    const granted = await call(coordinator.url, 'POST', '/v1/leases', { json: { nodeId: 'next', group: 'ttl', targetDigest: target } });
    expect(granted.status).toBe(200);
    const nextGrant = leaseGrantSchema.parse(granted.body);
    expect(nextGrant.fencingToken).toBeGreaterThan(grant.fencingToken);
    // Hand the new lease back so its own expiry cannot touch the snapshot below.
    await call(coordinator.url, 'POST', `/v1/leases/${nextGrant.leaseId}/release`, {
      json: { fencingToken: nextGrant.fencingToken, outcome: 'abandoned' },
    });

    await sleep(400);
    const before = snapshotDatabase(coordinator.dataFile);
    const late = await call(coordinator.url, 'POST', `/v1/leases/${grant.leaseId}/release`, {
      json: { fencingToken: grant.fencingToken, outcome: 'updated' },
    });
    expect(late.status).toBe(409);
    expect(errorResponseSchema.parse(late.body).error).toBe('lease-ended');
    await sleep(400);
    expect(snapshotDatabase(coordinator.dataFile)).toBe(before);
  });
});
