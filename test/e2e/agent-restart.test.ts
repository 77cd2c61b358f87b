/**
 * End to end: restarting agents (an agent upgrade, `systemctl restart baton-agent`) while no
 * rollout runs. The app containers are never touched; what the load balancer sees is the point,
 * since it health-checks the agents' readiness endpoints: while an agent is down, and until its
 * start-up reconcile has re-checked the container, its node is out of the load balancer.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, sleep, startFleet, type Fleet } from '../helpers/fleet.js';
import { describeLoad, startLoad } from '../helpers/load.js';

let fleet: Fleet | undefined;

beforeAll(async () => {
  fleet = await startFleet({ nodes: 3, maxUnavailable: 1, variants: [] });
}, 20 * 60_000);

afterAll(async () => {
  await fleet?.stop();
}, 120_000);

/** SIGTERM and start again; resolves with how long HAProxy had the node's server not UP (ms). */
async function restartOne(f: Fleet, index: number): Promise<number> {
  const name = f.nodes[index]!.id;
  const startMs = performance.now();
  let downAt: number | undefined;
  let upAt: number | undefined;
  const watch = (async () => {
    while (upAt === undefined && performance.now() - startMs < 30_000) {
      const server = (await f.haproxy.serverStates()).find((s) => s.name === name);
      if (server?.status !== 'UP' && downAt === undefined) downAt = performance.now();
      if (server?.status === 'UP' && downAt !== undefined) upAt = performance.now();
      await sleep(25);
    }
  })();
  await f.killAgent(index, 'SIGTERM');
  await f.restartAgent(index);
  await watch;
  if (downAt === undefined) return 0;
  if (upAt === undefined) throw new Error(`${name} did not come back UP in HAProxy within 30 s`);
  return Math.round(upAt - downAt);
}

describe('agent restart', () => {
  it('one agent at a time: no failed request, no container touched; each node leaves the load balancer for a moment', async () => {
    const f = fleet as Fleet;
    const load = startLoad({ url: f.haproxy.url, ratePerSecond: 40, durationMs: 90_000 });
    await sleep(1_000);
    const startMs = Date.now();
    const outMs: number[] = [];
    for (const index of [0, 1, 2]) {
      outMs.push(await restartOne(f, index));
      await f.haproxy.waitAllUp(10_000);
      await sleep(500);
    }
    const result = await load.stop();
    console.log(`out of HAProxy per agent restart (ms): ${JSON.stringify(outMs)}; load: ${describeLoad(result)}`);
    expect(result.failed, describeLoad(result)).toBe(0);
    expect(f.recorder.events().filter((e) => e.atMs >= startMs && e.action !== 'seed')).toEqual([]);
  }, 180_000);

  // FINDING (test/e2e/FINDINGS.md, "agent restart takes its node out of the load balancer"): all
  // agents restarted together take every node out of HAProxy for ~2 s although no container is
  // touched (91 of 197 requests failed with HAProxy's 503 "No server is available"). Skipped until the
  // agent keeps readiness up across its own restart; run with BATON_E2E_FINDINGS=1.
  it.skipIf(!process.env.BATON_E2E_FINDINGS)('all agents at once: no failed request', async () => {
    const f = fleet as Fleet;
    await f.haproxy.waitAllUp(10_000);
    const load = startLoad({ url: f.haproxy.url, ratePerSecond: 40, durationMs: 60_000 });
    await sleep(1_000);
    const startMs = Date.now();
    await Promise.all(f.nodes.map((n) => f.killAgent(n.index, 'SIGTERM')));
    await Promise.all(f.nodes.map((n) => f.restartAgent(n.index)));
    await eventually('every server UP again', async () => ((await f.haproxy.serverStates()).every((s) => s.status === 'UP') ? true : undefined), 30_000);
    await sleep(1_000);
    const result = await load.stop();
    console.log(describeLoad(result));
    expect(f.recorder.events().filter((e) => e.atMs >= startMs && e.action !== 'seed')).toEqual([]);
    expect(result.failed, describeLoad(result)).toBe(0);
  }, 180_000);
});
