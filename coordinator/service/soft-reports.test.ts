import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { heartbeatRequestSchema } from '../../shared/api/v1.js';
import type { Coordinator } from '../build.js';
import { buildTestCoordinator } from '../testing/coordinator.js';
import type { CoordinatorService } from './service.js';

const beat = (configProblem?: string | null) =>
  heartbeatRequestSchema.parse({
    group: 'web',
    host: 'web-1.local',
    image: '127.0.0.1:5000/app:latest',
    currentDigest: null,
    health: 'healthy',
    agentVersion: '0.1.0',
    ...(configProblem !== undefined ? { configProblem } : {}),
  });

describe('a node\'s config problem (soft state)', () => {
  let dir: string;
  let coordinator: Coordinator;
  let service: CoordinatorService;

  const start = async () => {
    coordinator = await buildTestCoordinator(join(dir, 'baton.db'), { newId: () => 'id' });
    service = coordinator.service;
  };
  const problemOf = async (nodeId: string) =>
    (await service.status()).groups.flatMap((g) => g.nodes).find((n) => n.nodeId === nodeId)?.configProblem;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'baton-config-problem-'));
    await start();
  });
  afterEach(async () => {
    await coordinator.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('shows the problem of the last heartbeat in the status, and clears it with the next heartbeat without one', async () => {
    await service.heartbeat('web-1', beat());
    expect(await problemOf('web-1')).toBeNull();
    await service.heartbeat('web-1', beat('invalid configuration in /etc/baton/agent.yaml: logLevel: Invalid option'));
    expect(await problemOf('web-1')).toBe('invalid configuration in /etc/baton/agent.yaml: logLevel: Invalid option');
    await service.heartbeat('web-1', beat(null));
    expect(await problemOf('web-1')).toBeNull();
    await service.heartbeat('web-1', beat('again'));
    await service.heartbeat('web-1', beat());
    expect(await problemOf('web-1')).toBeNull();
  });

  it('keeps it in memory only: a restarted coordinator knows it again at the next heartbeat', async () => {
    await service.heartbeat('web-1', beat('bad'));
    await coordinator.close();
    await start();
    expect(await problemOf('web-1')).toBeNull(); // the node is known (stored), its problem is not
    await service.heartbeat('web-1', beat('bad'));
    expect(await problemOf('web-1')).toBe('bad');
  });

  it('refuses control characters and overlong text in a heartbeat', () => {
    expect(heartbeatRequestSchema.safeParse({ ...beat(), configProblem: 'line one\nline two' }).success).toBe(false);
    expect(heartbeatRequestSchema.safeParse({ ...beat(), configProblem: 'x'.repeat(1_001) }).success).toBe(false);
    expect(heartbeatRequestSchema.safeParse({ ...beat(), configProblem: '' }).success).toBe(false);
    expect(heartbeatRequestSchema.safeParse({ ...beat(), configProblem: 'x'.repeat(1_000) }).success).toBe(true);
  });
});

describe('why a node is not healthy (soft state)', () => {
  let dir: string;
  let coordinator: Coordinator;
  let service: CoordinatorService;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'baton-health-reason-'));
    coordinator = await buildTestCoordinator(join(dir, 'baton.db'), { newId: () => 'id' });
    service = coordinator.service;
  });
  afterEach(async () => {
    await coordinator.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const nodeOf = async (nodeId: string) => (await service.status()).groups.flatMap((g) => g.nodes).find((n) => n.nodeId === nodeId);

  it('shows the reason of the last unhealthy heartbeat, and none once healthy', async () => {
    const beatWith = (health: string, healthReason?: string) =>
      heartbeatRequestSchema.parse({ ...beat(), health, ...(healthReason === undefined ? {} : { healthReason }) });
    await service.heartbeat('web-1', beatWith('unhealthy', 'container-paused'));
    expect(await nodeOf('web-1')).toMatchObject({ health: 'unhealthy', healthReason: 'container-paused' });
    await service.heartbeat('web-1', beatWith('unhealthy', 'engine-unreachable'));
    expect((await nodeOf('web-1'))?.healthReason).toBe('engine-unreachable');
    await service.heartbeat('web-1', beatWith('healthy'));
    expect(await nodeOf('web-1')).toMatchObject({ health: 'healthy', healthReason: null });
  });

  it('refuses a reason it does not know, naming the field', () => {
    const parsed = heartbeatRequestSchema.safeParse({ ...beat(), health: 'unhealthy', healthReason: 'bored' });
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues[0]?.path).toEqual(['healthReason']);
  });
});
