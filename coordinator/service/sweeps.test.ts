import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { heartbeatRequestSchema } from '../../shared/api/v1.js';
import { silentLogger } from '../../shared/logger.js';
import { ManualClock } from '../../shared/testing/clock.js';
import type { Coordinator } from '../build.js';
import type { NodeRecord } from '../state/model.js';
import { openSqliteStore } from '../store/sqlite.js';
import { buildTestCoordinator } from '../testing/coordinator.js';

const v1 = `sha256:${'1'.repeat(64)}`;
const v2 = `sha256:${'2'.repeat(64)}`;
const beat = heartbeatRequestSchema.parse({
  group: 'web',
  host: 'h',
  image: '127.0.0.1:5000/app:latest',
  currentDigest: v1,
  health: 'healthy',
  agentVersion: '0.1.0',
});

describe('the coordinator\'s sweeps, on its clock', () => {
  let dir: string;
  let clock: ManualClock;
  let coordinator: Coordinator;
  /** Every node the heartbeat flush wrote, as it wrote it. */
  let saved: NodeRecord[];

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'baton-sweeps-'));
    clock = new ManualClock(1_000);
    saved = [];
    const store = openSqliteStore(join(dir, 'baton.db'), { logger: silentLogger() });
    const saveHeartbeats = store.saveHeartbeats.bind(store);
    vi.spyOn(store, 'saveHeartbeats').mockImplementation(async (nodes) => {
      saved.push(...nodes);
      await saveHeartbeats(nodes);
    });
    coordinator = await buildTestCoordinator(join(dir, 'baton.db'), {
      clock,
      store,
      config: { leaseTtlMs: 10_000, heartbeatMissLimitMs: 60_000 },
      tuning: { expirySweepIntervalMs: 1_000, heartbeatFlushIntervalMs: 2_000 },
    });
    for (const node of ['n1', 'n2']) await coordinator.service.heartbeat(node, beat);
  });
  afterEach(async () => {
    await coordinator.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const eventTypes = async () => (await coordinator.service.readEvents({ limit: 100 })).map((event) => event.type);
  const leaseCount = async () => (await coordinator.service.status()).groups[0]?.leases.length;

  it('ends a lease whose TTL ran out when the clock passes it, with no request to the group', async () => {
    const decision = await coordinator.service.acquire({ nodeId: 'n1', group: 'web', targetDigest: v2 });
    expect(decision).toMatchObject({ granted: true, expiresAtMs: 11_000 });

    await clock.advance(9_000);
    expect(await leaseCount()).toBe(1);
    expect(await eventTypes()).not.toContain('expiry');

    await clock.advance(2_000);
    // Far sooner than any wall-clock interval would have fired.
    await expect.poll(eventTypes, { timeout: 300, interval: 10 }).toContain('expiry');
    expect(await leaseCount()).toBe(0);
  });

  it('writes the heartbeats that only reached the cache when the clock passes the flush interval', async () => {
    await clock.advance(500);
    await coordinator.service.heartbeat('n1', beat);
    expect(saved).toEqual([]);

    await clock.advance(1_500);
    await expect.poll(() => saved.map((node) => [node.nodeId, node.lastHeartbeatMs]), { timeout: 300, interval: 10 }).toEqual([['n1', 1_500]]);
  });
});
