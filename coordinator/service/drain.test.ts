import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { heartbeatRequestSchema } from '../../shared/api/v1.js';
import type { Coordinator } from '../build.js';
import { buildTestCoordinator } from '../testing/coordinator.js';
import { ConflictError, NotFoundError, type CoordinatorService } from './service.js';

const beat = (group: string) =>
  heartbeatRequestSchema.parse({ group, host: 'h', image: '127.0.0.1:5000/app:latest', currentDigest: null, health: 'healthy', agentVersion: '0.1.0' });

describe('CoordinatorService drain and undrain', () => {
  let dir: string;
  let coordinator: Coordinator;
  let service: CoordinatorService;
  let ids = 0;

  const start = async () => {
    coordinator = await buildTestCoordinator(join(dir, 'baton.db'), { newId: () => `id-${(ids += 1)}` });
    service = coordinator.service;
  };
  const drainedOf = async (nodeId: string) =>
    (await service.status()).groups.flatMap((g) => g.nodes.filter((n) => n.nodeId === nodeId).map((n) => [g.name, n.drained]));

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'baton-drain-'));
    await start();
    for (const node of ['n1', 'n2']) for (const group of ['web', 'api']) await service.heartbeat(node, beat(group));
  });
  afterEach(async () => {
    await coordinator.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('drains a node in every group it belongs to, durably, and undrains it', async () => {
    const answer = await service.drain('n1', undefined, 'disk swap');
    expect(answer).toEqual({
      nodeId: 'n1',
      groups: [
        { group: 'api', drained: { reason: 'disk swap', sinceMs: 1_000 }, changed: true },
        { group: 'web', drained: { reason: 'disk swap', sinceMs: 1_000 }, changed: true },
      ],
    });
    expect((await service.drain('n1', 'web', 'other')).groups).toEqual([{ group: 'web', drained: { reason: 'disk swap', sinceMs: 1_000 }, changed: false }]);
    await coordinator.close();
    await start();
    expect(await drainedOf('n1')).toEqual([
      ['api', { reason: 'disk swap', sinceMs: 1_000 }],
      ['web', { reason: 'disk swap', sinceMs: 1_000 }],
    ]);
    expect((await service.heartbeat('n1', beat('web'))).drained).toEqual({ reason: 'disk swap', sinceMs: 1_000 });
    expect((await service.undrain('n1', 'web')).groups).toEqual([{ group: 'web', drained: null, changed: true }]);
    expect(await drainedOf('n1')).toEqual([
      ['api', { reason: 'disk swap', sinceMs: 1_000 }],
      ['web', null],
    ]);
    // Undrained: it polls at its next heartbeat.
    expect((await service.heartbeat('n1', beat('web'))).pollNow).toBe(true);
    const types = (await service.readEvents({ limit: 100 })).map((e) => e.type).filter((t) => t === 'drain' || t === 'undrain');
    expect(types).toEqual(['drain', 'drain', 'undrain']);
  });

  it('refuses the whole drain when one group has no free slot, and drains nothing', async () => {
    await service.drain('n2', 'api', undefined);
    await expect(service.drain('n1', undefined, undefined)).rejects.toThrow(ConflictError);
    await expect(service.drain('n1', undefined, undefined)).rejects.toThrow(/not drained: group api already has 1 of 1 allowed nodes out of service \(n2 \(drained\)\)/);
    expect(await drainedOf('n1')).toEqual([
      ['api', null],
      ['web', null],
    ]);
  });

  it('answers 404 for an unknown node or a group the node is not in', async () => {
    await expect(service.drain('ghost', undefined, undefined)).rejects.toThrow(NotFoundError);
    await expect(service.undrain('n1', 'db')).rejects.toThrow('unknown node "n1" in group "db"');
  });
});
