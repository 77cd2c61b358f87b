import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { request } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { heartbeatRequestSchema } from '../../shared/api/v1.js';
import { ManualClock } from '../../shared/testing/clock.js';
import type { Coordinator } from '../build.js';
import { buildTestCoordinator } from '../testing/coordinator.js';

describe('the live feed, on the coordinator\'s clock', () => {
  let dir: string;
  let coordinator: Coordinator;
  let clock: ManualClock;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'baton-stream-'));
    clock = new ManualClock(1_000);
    coordinator = await buildTestCoordinator(join(dir, 'baton.db'), { clock, tuning: { snapshotIntervalMs: 2_000 } });
  });
  afterEach(async () => {
    await coordinator.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('sends a snapshot on connect, every interval while someone listens, and shortly after events', async () => {
    const { port } = await coordinator.listen({ host: '127.0.0.1', port: 0 });
    const stream = await request(`http://127.0.0.1:${port}/v1/events/stream`);
    let text = '';
    stream.body.on('data', (chunk: Buffer) => (text += chunk.toString()));
    const count = (kind: string) => text.split(`event: ${kind}\n`).length - 1;
    await expect.poll(() => count('snapshot')).toBe(1);

    await clock.advance(1_999);
    await delay(50);
    expect(count('snapshot')).toBe(1);
    await clock.advance(1);
    await expect.poll(() => count('snapshot')).toBe(2);

    const beat = { group: 'web', host: 'h', image: '127.0.0.1:5000/app:latest', currentDigest: null, health: 'healthy', agentVersion: '0.1.0' };
    await coordinator.service.heartbeat('n1', heartbeatRequestSchema.parse(beat));
    await expect.poll(() => count('events')).toBe(1);
    await delay(50);
    expect(count('snapshot')).toBe(2);
    await clock.advance(200);
    await expect.poll(() => count('snapshot')).toBe(3);
  });
});
