import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { heartbeatRequestSchema } from '../shared/api/v1.js';
import type { Coordinator } from './build.js';
import { buildTestCoordinator } from './testing/coordinator.js';

const beat = heartbeatRequestSchema.parse({
  group: 'web',
  host: 'h',
  image: '127.0.0.1:5000/app:latest',
  currentDigest: null,
  health: 'healthy',
  agentVersion: '0.1.0',
});

describe('buildCoordinator', () => {
  let dir: string;
  let coordinator: Coordinator | undefined;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'baton-build-'));
  });
  afterEach(async () => {
    await coordinator?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves the API and the status page plugin from one app', async () => {
    coordinator = await buildTestCoordinator(join(dir, 'baton.db'));
    await coordinator.service.heartbeat('n1', beat);
    expect((await coordinator.app.inject('/healthz')).json()).toEqual({ ok: true });
    expect((await coordinator.app.inject('/v1/status')).json()).toMatchObject({ groups: [{ name: 'web' }] });
    const page = await coordinator.app.inject('/');
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect((await coordinator.app.inject('/metrics')).body).toContain('baton_nodes');
    // The API's not-found answer covers the plugin's context too.
    expect((await coordinator.app.inject('/v1/nope')).json()).toMatchObject({ error: 'not-found' });
  });

  it('ends open live feeds when it closes, and keeps what it stored', async () => {
    coordinator = await buildTestCoordinator(join(dir, 'baton.db'));
    const { port } = await coordinator.listen({ host: '127.0.0.1', port: 0 });
    const stream = await request(`http://127.0.0.1:${port}/v1/events/stream`);
    expect(stream.statusCode).toBe(200);
    const body = stream.body.text();
    await coordinator.service.heartbeat('n1', beat);
    await coordinator.close();
    expect(await body).toContain('event: snapshot');

    coordinator = await buildTestCoordinator(join(dir, 'baton.db'));
    expect((await coordinator.service.status()).groups.map((group) => group.nodes.map((node) => node.nodeId))).toEqual([['n1']]);
  });
});
