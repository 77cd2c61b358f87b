/**
 * End to end, scenario 3 (I4, I5): kill -9 of the coordinator while a rollout waits between
 * nodes. While it is gone no node takes its container down (nobody can get a lease) and every
 * request still succeeds; restarted on the same database, it lets the rollout complete.
 */
import { describe, expect, it } from 'vitest';
import { formatBatonEvents, replayLeases } from '../../tools/fleet/lease-log.js';
import { eventually, sleep } from '../../tools/fleet/wait.js';
import { describeLoad } from '../../tools/fleet/load.js';
import { lastEventSeq, steadyLoad, withFleet } from './fixture.js';

const fleet = withFleet({ nodes: 3, maxUnavailable: 1, variants: ['v2'] });

describe('coordinator down', () => {
  it('kill -9 between nodes: nothing goes down while it is gone; restarted on the same database, the rollout completes', async () => {
    const f = fleet();
    const afterSeq = await lastEventSeq(f);
    const load = await steadyLoad(f, 150_000, 2_000);

    const pushedAtMs = Date.now();
    const digest = await f.push('v2');

    // The first node has finished (released `updated`): kill the coordinator at once, before the next grant.
    const firstRelease = await eventually(
      'the first node released its lease',
      async () => (await f.events(afterSeq)).find((e) => e.type === 'release' && e.digest === digest && e.outcome === 'updated'),
      60_000,
      25,
    );
    await f.killCoordinator('SIGKILL');
    const killedAtMs = Date.now();

    // The outage: longer than a lease TTL (10 s) and many heartbeat intervals.
    await sleep(12_000);
    const restartedAtMs = Date.now();
    // While it was gone: no node took its container down (a node granted just before the kill excepted).
    const duringOutage = f.recorder
      .events()
      .filter((e) => e.atMs >= killedAtMs && e.atMs <= restartedAtMs && ['kill', 'die', 'stop'].includes(e.action));
    const states = await f.containers();
    expect(states.every((s) => s.running && s.health === 'healthy' && !s.hasOld)).toBe(true);

    await f.restartCoordinator();
    await f.waitConverged(digest, 120_000);
    const convergedAtMs = Date.now();
    await sleep(2_000);
    const result = await load.stop();

    const events = await f.events(afterSeq);
    const log = formatBatonEvents(events.filter((e) => e.type !== 'refusal'));
    // A grant that slipped in between the release and the kill would allow that one node to go on.
    const slipped = events.filter((e) => e.type === 'grant' && e.seq > firstRelease.seq && e.atMs <= killedAtMs).map((e) => e.nodeId);
    console.log(
      `first release ${firstRelease.nodeId} at +${firstRelease.atMs - pushedAtMs} ms; killed at +${killedAtMs - pushedAtMs} ms; ` +
        `grants between release and kill: ${JSON.stringify(slipped)}; converged ${convergedAtMs - restartedAtMs} ms after the restart; ` +
        `load: ${describeLoad(result)}`,
    );
    if (process.env.BATON_E2E_VERBOSE) console.log(formatBatonEvents(events));
    expect(duringOutage.filter((e) => !slipped.includes(e.node)), f.diagnostics(killedAtMs)).toEqual([]);
    expect(slipped, 'the kill came too late to be "between nodes"; the test did not test what it says').toEqual([]);

    expect(result.failed, `${describeLoad(result)}\n${f.diagnostics(pushedAtMs)}`).toBe(0);
    expect(f.unavailability(pushedAtMs, Date.now()).maxDown).toBe(1);
    const replay = replayLeases(events);
    expect(replay.maxHolders, log).toBe(1);
    expect(replay.tokensIncrease, log).toBe(true);
    expect(replay.grants.filter((g) => g.digest === digest).length, log).toBe(3);
    expect(replay.grants.filter((g) => g.atMs > killedAtMs).length, log).toBe(2);
    expect(events.some((e) => e.type === 'rollout-completed' && e.digest === digest), log).toBe(true);
    // The restarted coordinator still knows the first node's grant and release (same database).
    expect(events.some((e) => e.seq === firstRelease.seq)).toBe(true);
  }, 240_000);
});
