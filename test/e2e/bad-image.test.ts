/**
 * End to end, scenario 2: an image that never becomes healthy (I3). The first node to take the
 * lease rolls back to v1, the rollout halts, no other node stops its container, and no request
 * fails. Then a good v3 is pushed and the fleet fixes forward to it.
 */
import { describe, expect, it } from 'vitest';
import { agentLines } from '../../tools/fleet/agent.js';
import { formatBatonEvents, replayLeases } from '../../tools/fleet/lease-log.js';
import { eventually, sleep } from '../../tools/fleet/wait.js';
import { describeLoad } from '../../tools/fleet/load.js';
import { lastEventSeq, steadyLoad, withFleet } from './fixture.js';

const fleet = withFleet({ nodes: 3, maxUnavailable: 1, variants: ['bad', 'v3'] });

describe('bad image', () => {
  it('push bad: the first node rolls back, the rollout halts, nobody else stops; push v3: the fleet fixes forward', async () => {
    const f = fleet();
    const afterSeq = await lastEventSeq(f);
    const marks = f.nodes.map((n) => n.agent.mark());
    const load = await steadyLoad(f, 150_000, 2_000);

    // ---- bad
    const badPushedAtMs = Date.now();
    const bad = await f.push('bad');
    const culprit = await eventually(
      'a node rolling back',
      () =>
        f.nodes.find((n, i) =>
          n.agent.lines.slice(marks[i]).some((l) => agentLines.updateFinished('rolled-back')(l) && l.digest === bad),
        ),
      60_000,
      200,
    );
    const rolledBackAtMs = Date.now();
    const halted = await eventually('the rollout halted', async () => {
      const group = (await f.status()).groups.find((g) => g.name === 'app');
      return group?.rollout?.targetDigest === bad && group.rollout.state === 'halted' ? group.rollout : undefined;
    });
    expect(halted.haltedByNodeId).toBe(culprit.id);
    // The other nodes keep polling (every 2 s), see the bad digest and are refused: give them time to misbehave.
    await sleep(8_000);
    const states = await f.containers();
    const v1 = f.digests.v1 as string;
    expect(states.map((s) => [s.node, s.digest, s.running, s.health, s.hasOld])).toEqual(
      f.nodes.map((n) => [n.id, v1, true, 'healthy', false]),
    );
    const badWindowEndMs = Date.now();

    // Docker's own events: only the culprit's containers stopped or started; at most 1 node down.
    const touched = f.recorder
      .events()
      .filter((e) => e.atMs >= badPushedAtMs && e.atMs <= badWindowEndMs && ['kill', 'die', 'stop', 'start'].includes(e.action));
    expect(new Set(touched.map((e) => e.node)), f.diagnostics(badPushedAtMs)).toEqual(new Set([culprit.id]));
    const down = f.unavailability(badPushedAtMs, badWindowEndMs);
    expect(down.maxDown).toBe(1);
    // No other node ever started the bad digest.
    const badStarts = f.recorder.events().filter((e) => e.action === 'start' && e.digest === bad);
    expect(badStarts.map((e) => e.node)).toEqual([culprit.id]);

    // The coordinator's log: one grant for bad, released `failed`, then a halt, and refusals after.
    const badEvents = await f.events(afterSeq);
    const badLog = formatBatonEvents(badEvents.filter((e) => e.type !== 'refusal'));
    const badReplay = replayLeases(badEvents);
    expect(badReplay.grants.map((g) => [g.nodeId, g.digest]), badLog).toEqual([[culprit.id, bad]]);
    expect(badReplay.releases.map((r) => r.outcome), badLog).toEqual(['failed']);
    expect(badEvents.some((e) => e.type === 'halt' && e.digest === bad), badLog).toBe(true);
    const refusals = badEvents.filter((e) => e.type === 'refusal' && e.reason === 'halted');
    expect(refusals.length, badLog).toBeGreaterThan(0);
    expect(refusals.every((e) => e.nodeId !== culprit.id || e.atMs > rolledBackAtMs - 5_000)).toBe(true);

    // ---- v3: fix forward
    const v3PushedAtMs = Date.now();
    const v3 = await f.push('v3');
    await f.waitConverged(v3, 90_000);
    const convergedAtMs = Date.now();
    await sleep(2_000);
    const result = await load.stop();
    console.log(
      `bad: rolled back by ${culprit.id} ${rolledBackAtMs - badPushedAtMs} ms after the push; ` +
        `v3 converged ${convergedAtMs - v3PushedAtMs} ms after its push; load: ${describeLoad(result)}`,
    );

    expect(result.failed, `${describeLoad(result)}\n${f.diagnostics(badPushedAtMs)}`).toBe(0);
    expect(Object.keys(result.versionSpans).sort()).toEqual(['v1', 'v3']);
    const v3Down = f.unavailability(v3PushedAtMs, Date.now());
    expect(v3Down.maxDown, f.diagnostics(v3PushedAtMs)).toBe(1);
    const all = await f.events(afterSeq);
    const replay = replayLeases(all);
    expect(replay.maxHolders).toBe(1);
    expect(replay.grants.filter((g) => g.digest === v3).length).toBe(3);
    expect(all.some((e) => e.type === 'rollout-completed' && e.digest === v3)).toBe(true);
  }, 240_000);
});
