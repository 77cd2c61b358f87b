/**
 * End to end, scenario 1: `docker push` of v2 while steady load goes through HAProxy. Every node
 * converges on v2's digest, no request fails (I6), and never more than maxUnavailable (1) app
 * containers are down at once (I1) — by the engines' own events and by the coordinator's event log.
 */
import { describe, expect, it } from 'vitest';
import { formatBatonEvents, replayLeases } from '../../tools/fleet/lease-log.js';
import { sleep } from '../../tools/fleet/wait.js';
import { describeLoad } from '../../tools/fleet/load.js';
import { lastEventSeq, steadyLoad, withFleet } from './fixture.js';

const fleet = withFleet({ nodes: 3, maxUnavailable: 1, variants: ['v2'] });

describe('rollout under load', () => {
  it('push v2: every node converges, 0 failed requests, at most 1 node down (engines and lease log)', async () => {
    const f = fleet();
    const afterSeq = await lastEventSeq(f);
    const load = await steadyLoad(f, 90_000, 2_000);

    const pushedAtMs = Date.now();
    const digest = await f.push('v2');
    expect(digest).toBe(f.digests.v2);
    await f.waitConverged(digest, 80_000);
    const convergedAtMs = Date.now();
    await sleep(2_000);
    const result = await load.stop();
    const endMs = Date.now();
    console.log(`push → converged: ${convergedAtMs - pushedAtMs} ms; load: ${describeLoad(result)}`);

    // I6: every request made during the rollout succeeded.
    expect(result.failed, `${describeLoad(result)}\n${f.diagnostics(pushedAtMs)}`).toBe(0);
    expect(result.sent).toBeGreaterThan(100);
    // The switch is visible: v1 before, v2 after, nothing else.
    expect(Object.keys(result.versionSpans).sort()).toEqual(['v1', 'v2']);
    expect(result.versionSpans.v1!.lastMs).toBeLessThanOrEqual(convergedAtMs);

    // I1 from Docker's own events: each node went down once, never two at a time.
    const down = f.unavailability(pushedAtMs, endMs);
    console.log('down intervals:', down.intervals.map((i) => `${i.node} ${i.toMs - i.fromMs} ms`).join(', '));
    expect(down.maxDown, f.diagnostics(pushedAtMs)).toBe(1);
    expect(new Set(down.intervals.map((i) => i.node)).size).toBe(3);
    expect(down.intervals.every((i) => !i.open)).toBe(true);

    // I1 from the coordinator's log: three grants for v2, released `updated`, never two held.
    const events = await f.events(afterSeq);
    const replay = replayLeases(events);
    const log = formatBatonEvents(events.filter((e) => e.type !== 'refusal'));
    expect(replay.maxHolders, log).toBe(1);
    expect(replay.tokensIncrease, log).toBe(true);
    expect(replay.grants.map((g) => g.digest), log).toEqual([digest, digest, digest]);
    expect(new Set(replay.grants.map((g) => g.nodeId)).size, log).toBe(3);
    expect(replay.releases.map((r) => r.outcome), log).toEqual(['updated', 'updated', 'updated']);
    expect(replay.heldAtEnd, log).toEqual([]);
    expect(events.some((e) => e.type === 'rollout-completed' && e.digest === digest), log).toBe(true);
  }, 180_000);
});
