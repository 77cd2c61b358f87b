/**
 * End to end: a host's container or engine fails under Baton (issue 8). Readiness answers from a live
 * probe (an inspect through the engine and the app's own check, cached readiness.probeCacheMs =
 * 250 ms), so a node whose app is paused, or whose engine is gone, leaves HAProxy within about that
 * plus fall × inter (2 × 250 ms), and the coordinator, which sees the same answer in the node's
 * heartbeats, grants no lease while that node is out. One fleet (agents under socket activation,
 * as with baton-agent.socket), steady load through HAProxy (no retries, 10 % of requests 1 s long);
 * HAProxy's own server states sampled from its stats socket every 25 ms; Docker's events recorded.
 *
 *   app paused:      `docker pause` of node-2's app for 4 s, no rollout;
 *   engine stopped:  v2 pushed; while the first node holds its lease, another host's dockerd is
 *                    killed (SIGKILL: its containers keep running, as after an engine crash), left
 *                    down 12 s, then started again on the same data root; the rollout completes.
 */
import { describe, expect, it } from 'vitest';
import type { BatonEvent } from '../../shared/api/v1.js';
import { type FleetNode } from '../../tools/fleet/fleet.js';
import { FLEET_GROUP, FLEET_SERVICE } from '../../tools/fleet/fleet-names.js';
import { formatBatonEvents, replayLeases } from '../../tools/fleet/lease-log.js';
import { eventually, sleep } from '../../tools/fleet/wait.js';
import { sampleServers } from '../../tools/fleet/haproxy-stats.js';
import { describeLoad, startLoad } from '../../tools/fleet/load.js';
import { lastEventSeq, withFleet } from './fixture.js';

/** HAProxy's check timing in the fleet (haproxy.ts defaults) and the agent's probe cache (its default). */
const interMs = 250;
const fall = 2;
const probeCacheMs = 250;
/** Scheduling slack on a busy 2-core machine, on top of each bound below. */
const slackMs = 500;

const fleet = withFleet({ nodes: 3, maxUnavailable: 1, variants: ['v2'], socketActivation: true });

describe('a host fails under Baton', () => {
  it('app paused on one host: out of HAProxy within ~1 s + fall × inter, back after unpause, no failed request', async () => {
    const f = fleet();
    const victim = f.nodes[1] as FleetNode;
    await f.haproxy.waitAllUp(15_000);
    const sampler = sampleServers(f.haproxy);
    const load = startLoad({ url: f.haproxy.url, ratePerSecond: 40, durationMs: 60_000 });
    let pausedAtMs = 0;
    let unpausedAtMs = 0;
    try {
      await sleep(1_500);
      pausedAtMs = Date.now();
      await victim.docker.getContainer(FLEET_SERVICE).pause();
      await sleep(4_000);
      unpausedAtMs = Date.now();
      await victim.docker.getContainer(FLEET_SERVICE).unpause();
      await f.haproxy.waitAllUp(20_000);
      await sleep(2_000);
    } finally {
      await victim.docker.getContainer(FLEET_SERVICE).unpause().catch(() => undefined);
    }
    const result = await load.stop();
    await sampler.stop();

    const outAtMs = sampler.firstOut(victim.id, pausedAtMs);
    const backAtMs = sampler.firstIn(victim.id, unpausedAtMs);
    const down = f.unavailability(pausedAtMs - 1_000, Date.now());
    const out = sampler.maxOut({ fromMs: pausedAtMs - 1_000 });
    console.log(
      `[app paused] ${victim.id} out of HAProxy ${outAtMs === undefined ? 'never' : `${outAtMs - pausedAtMs} ms`} after the pause, ` +
        `back ${backAtMs === undefined ? 'never' : `${backAtMs - unpausedAtMs} ms`} after the unpause; most out at once (HAProxy) ${out.maxOut}, ` +
        `(Docker) ${down.maxDown}; load: ${describeLoad(result)}`,
    );
    const why = `${describeLoad(result)}\n--- HAProxy states ---\n${sampler.describe(pausedAtMs - 1_000)}\n${f.diagnostics(pausedAtMs - 1_000)}`;
    expect(result.failed, why).toBe(0);
    expect(outAtMs, why).toBeDefined();
    expect((outAtMs as number) - pausedAtMs, why).toBeLessThanOrEqual(1_000 + fall * interMs + slackMs);
    expect(backAtMs, why).toBeDefined();
    expect(out.maxOut, why).toBeLessThanOrEqual(1);
    expect(out.servers.every((s) => s === victim.id), why).toBe(true);
    expect(down.maxDown, why).toBeLessThanOrEqual(1);
  }, 120_000);

  it('engine stopped on one host mid-rollout: that host leaves HAProxy at once, no other node is granted a lease while it is down, the rollout completes after the engine is back', async () => {
    const f = fleet();
    await f.haproxy.waitAllUp(15_000);
    const afterSeq = await lastEventSeq(f);
    const sampler = sampleServers(f.haproxy);
    const load = startLoad({ url: f.haproxy.url, ratePerSecond: 40, durationMs: 150_000 });
    // The coordinator's view of every node's heartbeat health, every 100 ms.
    const healthSamples: Array<{ atMs: number; health: Record<string, string> }> = [];
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        try {
          const group = (await f.status()).groups.find((g) => g.name === FLEET_GROUP);
          healthSamples.push({ atMs: Date.now(), health: Object.fromEntries((group?.nodes ?? []).map((n) => [n.nodeId, n.silent ? 'silent' : n.health])) });
        } catch {
          // Next one.
        }
        await sleep(100);
      }
    })();

    let victim: FleetNode | undefined;
    let killedAtMs = 0;
    let restartedAtMs = 0;
    try {
      await sleep(1_500);
      const pushedAtMs = Date.now();
      const digest = await f.push('v2');
      const first = await eventually('the first grant', async () => (await f.events(afterSeq)).find((e) => e.type === 'grant' && e.digest === digest), 60_000, 25);
      // The victim: the last node by id that is not updating (so another node waits its turn behind it).
      victim = [...f.nodes].reverse().find((n) => n.id !== first.nodeId) as FleetNode;
      await sleep(300);
      killedAtMs = Date.now();
      await f.stopEngine(victim.index, 'SIGKILL');
      await sleep(12_000);
      restartedAtMs = Date.now();
      await f.startEngine(victim.index);
      await f.waitConverged(digest, 120_000);
      await sleep(1_500);
      const result = await load.stop();
      watching = false;
      await watcher;
      await sampler.stop();

      const events = await f.events(afterSeq);
      const log = formatBatonEvents(events);
      const name = victim.id;
      const outAtMs = sampler.firstOut(name, killedAtMs);
      const backAtMs = sampler.firstIn(name, restartedAtMs);
      // The victim unhealthy (or silent) in the coordinator's view: from the first such sample to the next healthy one.
      const unhealthyFrom = healthSamples.find((s) => s.atMs >= killedAtMs && s.health[name] !== 'healthy')?.atMs;
      const healthyAgain = healthSamples.find((s) => unhealthyFrom !== undefined && s.atMs > unhealthyFrom && s.health[name] === 'healthy')?.atMs;
      const healthAt = (atMs: number): string | undefined => [...healthSamples].reverse().find((s) => s.atMs <= atMs)?.health[name];
      const grants = events.filter((e) => e.type === 'grant');
      const grantsAfterKill = grants.filter((g) => g.atMs >= killedAtMs);
      const refusedForVictim = events.filter((e) => e.type === 'refusal' && e.reason === 'unhealthy-peer' && (e.message ?? '').includes(name));
      const firstRelease = events.find((e) => e.type === 'release' && e.leaseId === first.leaseId);
      const withoutVictim = sampler.maxOut({ fromMs: pushedAtMs, exclude: [name] });
      const afterFirstLease = sampler.maxOut({ fromMs: (firstRelease?.atMs ?? killedAtMs) + 1, toMs: Date.now() });
      const down = f.unavailability(pushedAtMs, Date.now());
      const replay = replayLeases(events);
      console.log(
        `[engine stopped] first lease ${first.nodeId}; ${name}'s dockerd killed +${killedAtMs - pushedAtMs} ms after the push; ` +
          `out of HAProxy ${outAtMs === undefined ? 'never' : `${outAtMs - killedAtMs} ms`} after the kill; coordinator saw it ` +
          `${healthAt(restartedAtMs)} ${unhealthyFrom === undefined ? '-' : unhealthyFrom - killedAtMs} ms after the kill, healthy again ` +
          `${healthyAgain === undefined ? '-' : healthyAgain - restartedAtMs} ms after the engine restart; back in HAProxy ` +
          `${backAtMs === undefined ? 'never' : `${backAtMs - restartedAtMs} ms`} after the restart; grants after the kill: ` +
          `${grantsAfterKill.map((g) => `${String(g.nodeId)} +${g.atMs - killedAtMs} ms (${String(healthAt(g.atMs))})`).join(', ')}; ` +
          `unhealthy-peer refusals naming it: ${refusedForVictim.length}; most out at once (HAProxy) without ${name}: ${withoutVictim.maxOut}, ` +
          `with it after the first lease: ${afterFirstLease.maxOut} (${afterFirstLease.servers.join(', ')}); most down at once (Docker) ${down.maxDown} ` +
          `(${down.intervals.map((i) => `${i.node} ${i.toMs - i.fromMs} ms`).join(', ')}); ` +
          `load: ${describeLoad(result)}`,
      );
      if (process.env.BATON_E2E_VERBOSE) console.log(`${log}\n${sampler.describe(pushedAtMs)}`);
      const why = `${describeLoad(result)}\n--- coordinator ---\n${log}\n--- HAProxy states ---\n${sampler.describe(pushedAtMs)}\n${f.diagnostics(pushedAtMs)}`;

      expect(result.failed, why).toBe(0);
      // Out of the balancer within about one probe cache period plus fall × inter.
      expect(outAtMs, why).toBeDefined();
      expect((outAtMs as number) - killedAtMs, why).toBeLessThanOrEqual(probeCacheMs + fall * interMs + slackMs);
      // The coordinator learnt it (heartbeats), and refused the next node because of it.
      expect(unhealthyFrom, why).toBeDefined();
      expect(refusedForVictim.length, why).toBeGreaterThan(0);
      // No other node was granted a lease while the victim was out: every grant to another node after
      // the kill came once its heartbeat said healthy again. The victim itself (waiting its turn when its
      // engine died) asked for none while its engine was down: a grant could not have been used.
      for (const grant of grantsAfterKill) {
        if (grant.nodeId === name) {
          expect(grant.atMs > restartedAtMs, `grant ${grant.seq} to the victim while its engine was down\n${why}`).toBe(true);
          continue;
        }
        expect(healthAt(grant.atMs), `grant ${grant.seq} to ${String(grant.nodeId)}\n${why}`).toBe('healthy');
        expect(grant.atMs > (healthyAgain ?? Number.POSITIVE_INFINITY), `grant ${grant.seq}\n${why}`).toBe(true);
      }
      // Never more than maxUnavailable out because of Baton: besides the victim at most one; once the
      // lease held when the engine died was released, at most one counting the victim.
      expect(withoutVictim.maxOut, why).toBeLessThanOrEqual(1);
      expect(afterFirstLease.maxOut, why).toBeLessThanOrEqual(1);
      expect(down.maxDown, why).toBeLessThanOrEqual(1);
      // Docker's record covers the restarted engine too (the recorder subscribed again): the victim's v2 container started.
      expect(f.recorder.eventsOf(name).some((e) => e.action === 'start' && e.digest === digest && e.atMs > restartedAtMs), why).toBe(true);
      expect(replay.maxHolders, why).toBe(1);
      expect(events.some((e: BatonEvent) => e.type === 'rollout-completed' && e.digest === digest), why).toBe(true);
      expect(events.some((e) => e.type === 'halt'), why).toBe(false);
    } finally {
      watching = false;
      await load.stop();
      await sampler.stop();
      if (victim && !victim.engine.running) await f.startEngine(victim.index).catch(() => undefined);
    }
  }, 240_000);
});
