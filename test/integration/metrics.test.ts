import { register as globalRegistry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { figuresResponseSchema } from '../../shared/api/v1.js';
import { startInProcessCoordinator, type InProcessCoordinator } from '../../tools/fleet/coordinator.js';
import { call, digestOf } from '../../tools/fleet/http.js';
import { simFleet } from '../../tools/fleet/sim-agent.js';

const agentToken = 'agent-token-0123456789abcdef';
const adminToken = 'admin-token-0123456789abcdef';
const auth = { agentTokens: [agentToken], adminToken, publicStatus: false };
const image = '127.0.0.1:5000/shop/web:v2';

/** Every sample of the exposition text, keyed by `name{labels}` exactly as written. */
function samples(text: string): Map<string, number> {
  const map = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    map.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return map;
}

async function scrape(url: string): Promise<{ text: string; values: Map<string, number>; contentType: string }> {
  const answer = await call(url, 'GET', '/metrics', { token: agentToken });
  expect(answer.status).toBe(200);
  const text = String(answer.body);
  return { text, values: samples(text), contentType: String(answer.headers['content-type']) };
}

/** web: 3 nodes roll out v2 (one refused as busy on the way); api: the first node fails, halting the rollout. */
async function scriptedRollouts(url: string): Promise<void> {
  const web = simFleet(url, ['web-1', 'web-2', 'web-3'], { group: 'web', image, digest: digestOf('v1'), token: agentToken });
  const api = simFleet(url, ['api-1', 'api-2'], { group: 'api', image, digest: digestOf('a1'), token: agentToken });
  for (const agent of [...web, ...api]) await agent.heartbeat();
  const [w1, w2, w3] = web;
  const grant = await w1!.mustAcquire(digestOf('v2'), image);
  expect(await w2!.acquire(digestOf('v2'), image)).toMatchObject({ granted: false, reason: 'busy' });
  await w1!.enter('drain', 'draining');
  await new Promise((resolve) => setTimeout(resolve, 30));
  await w1!.release(grant, 'updated');
  await w1!.heartbeat();
  await w2!.update(digestOf('v2'), image);
  await w3!.update(digestOf('v2'), image);
  await api[0]!.fail(digestOf('a2'), image, 'health check failed');
  expect(await api[1]!.acquire(digestOf('a2'), image)).toMatchObject({ granted: false, reason: 'halted' });
}

describe('GET /metrics and GET /v1/figures', () => {
  let coordinator: InProcessCoordinator | undefined;
  afterEach(async () => {
    await coordinator?.stop({ removeData: true });
    coordinator = undefined;
  });

  it('exports rollouts, leases, grants, refusals, nodes and durations after a scripted rollout', async () => {
    coordinator = await startInProcessCoordinator({ config: { auth } });
    const { url } = coordinator;
    expect((await call(url, 'GET', '/metrics')).status).toBe(401);

    await scriptedRollouts(url);
    const { values, text, contentType } = await scrape(url);
    expect(contentType).toContain('text/plain');

    expect(values.get('baton_rollouts{state="completed"}')).toBe(1);
    expect(values.get('baton_rollouts{state="halted"}')).toBe(1);
    expect(values.get('baton_rollouts{state="in-progress"}')).toBe(0);
    expect(values.get('baton_leases_held{group="web"}')).toBe(0);
    expect(values.get('baton_leases_held{group="api"}')).toBe(0);
    expect(values.get('baton_lease_grants_total{group="web"}')).toBe(3);
    expect(values.get('baton_lease_grants_total{group="api"}')).toBe(1);
    expect(values.get('baton_lease_refusals_total{group="web",reason="busy"}')).toBe(1);
    expect(values.get('baton_lease_refusals_total{group="api",reason="halted"}')).toBe(1);
    expect(values.get('baton_lease_releases_total{group="web",outcome="updated"}')).toBe(3);
    expect(values.get('baton_lease_releases_total{group="api",outcome="failed"}')).toBe(1);
    expect(values.get('baton_nodes{group="web",health="healthy"}')).toBe(3);
    expect(values.get('baton_nodes{group="api",health="healthy"}')).toBe(2);
    expect(values.get('baton_nodes{group="web",health="unhealthy"}')).toBe(0);
    expect(values.get('baton_nodes_silent{group="web"}')).toBe(0);
    expect(values.get('baton_rollout_progress_ratio{group="web",state="completed"}')).toBe(1);
    expect(values.get('baton_rollout_duration_seconds_count{group="web"}')).toBe(1);
    expect(values.get('baton_rollout_duration_seconds_sum{group="web"}')).toBeGreaterThan(0.02);
    expect(values.get('baton_rollout_duration_seconds_bucket{le="+Inf",group="web"}')).toBe(1);
    expect(values.get('baton_rollback_duration_seconds_count{group="api"}')).toBe(1);
    expect(values.get('baton_events_total{type="halt"}')).toBe(1);
    expect(text).toContain('# TYPE baton_rollout_duration_seconds histogram');
    expect(text).toContain('# TYPE baton_lease_grants_total counter');
    expect(text).toContain('# TYPE baton_leases_held gauge');

    // A lease out shows as held; the coordinator's registry is its own, not prom-client's global one.
    const agent = simFleet(url, ['web-4'], { group: 'web', image, digest: digestOf('v1'), token: agentToken })[0]!;
    await agent.heartbeat();
    await agent.mustAcquire(digestOf('v2'), image);
    const after = await scrape(url);
    expect(after.values.get('baton_leases_held{group="web"}')).toBe(1);
    expect(after.values.get('baton_rollouts{state="in-progress"}')).toBe(1);
    expect(after.values.get('baton_lease_grants_total{group="web"}')).toBe(4);
    expect(await globalRegistry.getSingleMetric('baton_leases_held')).toBeUndefined();
  });

  it('computes figures on the coordinator and rebuilds them from the log after a restart', async () => {
    coordinator = await startInProcessCoordinator({ config: { auth } });
    const { url, dataFile } = coordinator;
    expect((await call(url, 'GET', '/v1/figures')).status).toBe(401);
    const empty = figuresResponseSchema.parse((await call(url, 'GET', '/v1/figures', { token: agentToken })).body);
    expect(empty.rollouts.successRate).toBeNull();
    expect(empty.updates.perHourWhileRolling).toBeNull();

    await scriptedRollouts(url);
    const figures = figuresResponseSchema.parse((await call(url, 'GET', '/v1/figures', { token: agentToken })).body);
    expect(figures.rollouts).toMatchObject({ succeeded: 1, failed: 1, aborted: 0, open: 0, successRate: 0.5 });
    expect(figures.rollouts.medianDurationMs).toBeGreaterThanOrEqual(30);
    expect(figures.rollback.count).toBe(1);
    expect(figures.rollback.lastMs).not.toBeNull();
    expect(figures.updates).toMatchObject({ lastHour: 3, last24h: 3 });
    expect(figures.updates.perHourWhileRolling).toBeGreaterThan(0);

    await coordinator.stop();
    coordinator = await startInProcessCoordinator({ config: { auth }, dataFile });
    const again = figuresResponseSchema.parse((await call(coordinator.url, 'GET', '/v1/figures', { token: adminToken })).body);
    expect(again.rollouts).toEqual(figures.rollouts);
    expect(again.rollback).toEqual(figures.rollback);
    expect(again.updates.last24h).toBe(3);
  });
});
