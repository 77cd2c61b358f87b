/**
 * End to end, scenario 6: the registry's push notification reaches the coordinator, which asks the
 * agents (in their next heartbeat answer) to poll now. The agents' schedule is hourly (each node at
 * its staggered place in the hour), and each agent's first poll after the push must be the one the
 * hint woke, so only the notification explains the first node starting its update within seconds.
 */
import { describe, expect, it } from 'vitest';
import { agentLines } from '../../tools/fleet/agent.js';
import { formatBatonEvents } from '../../tools/fleet/lease-log.js';
import { eventually, sleep } from '../../tools/fleet/wait.js';
import { describeLoad } from '../../tools/fleet/load.js';
import { lastEventSeq, steadyLoad, withFleet } from './fixture.js';

// Hourly: a node's scheduled poll falls somewhere in the hour, by a hash of its id.
const minute = (new Date().getMinutes() + 30) % 60;
const cron = `0 ${minute} * * * *`;

const fleet = withFleet({ nodes: 3, maxUnavailable: 1, variants: ['v2'], cron, splayMs: 0 }, () => console.log('cron:', cron));

describe('registry push notification', () => {
  it('the first node starts its update within seconds of the push, long before its next scheduled poll', async () => {
    const f = fleet();
    const afterSeq = await lastEventSeq(f);
    const coordinatorMark = f.coordinator.lines.length;
    const marks = f.nodes.map((n) => n.agent.mark());
    const load = await steadyLoad(f, 120_000, 1_000);

    const pushStartMs = Date.now();
    const digest = await f.push('v2');
    const pushedAtMs = Date.now();

    // The registry's POST reached the coordinator.
    const noticed = await eventually(
      'the coordinator noticing the push',
      () => f.coordinator.lines.slice(coordinatorMark).find((l) => l.includes('registry push: nodes will poll now')),
      10_000,
      20,
    );
    const noticedAtMs = Date.now();
    // The first grant of the new digest.
    const grant = await eventually(
      'the first grant',
      async () => (await f.events(afterSeq)).find((e) => e.type === 'grant' && e.digest === digest),
      30_000,
      50,
    );
    const firstStartMs = grant.atMs - pushedAtMs;
    await f.waitConverged(digest, 90_000);
    const convergedAtMs = Date.now();
    await sleep(1_000);
    const result = await load.stop();

    // Every agent was asked to poll by the coordinator, and none polled on its schedule.
    const asked = f.nodes.map((n, i) =>
      n.agent.lines.slice(marks[i]).some((l) => l.msg === 'coordinator asked for a poll now (registry push)'),
    );
    const polls = f.nodes.map((n, i) => n.agent.lines.slice(marks[i]).filter(agentLines.polled).length);
    // The scheduler's line for each agent's first poll after the push says what woke it.
    const firstPollReasons = f.nodes.map((n, i) =>
      n.agent.lines.slice(marks[i]).find((l) => l.msg === 'poll' && typeof l.reason === 'string')?.reason,
    );
    console.log(
      `push took ${pushedAtMs - pushStartMs} ms; coordinator noticed it ${noticedAtMs - pushedAtMs} ms after; first grant ` +
        `${firstStartMs} ms after (${grant.nodeId}); converged ${convergedAtMs - pushedAtMs} ms after; polls per agent ${JSON.stringify(polls)}; ` +
        `load: ${describeLoad(result)}`,
    );
    expect(noticed).toContain('registry push');
    expect(asked).toEqual([true, true, true]);
    expect(firstPollReasons).toEqual(['hint', 'hint', 'hint']);
    expect(firstStartMs, formatBatonEvents(await f.events(afterSeq))).toBeLessThan(8_000);
    // A poll or two per agent (the hinted one, repeated when it met a health check), not a schedule.
    expect(polls.every((n) => n >= 1 && n <= 3)).toBe(true);
    expect(result.failed, describeLoad(result)).toBe(0);
    expect(f.unavailability(pushedAtMs, Date.now()).maxDown).toBe(1);
  }, 240_000);
});
