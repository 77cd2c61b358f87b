/**
 * End to end (I4): the registry hangs (SIGSTOP: connections accepted, never answered) for a while
 * under load. The agents' polls time out and back off; no node touches its container and no
 * request fails. When the registry answers again, a push rolls out as usual.
 */
import { describe, expect, it } from 'vitest';
import { sleep } from '../../tools/fleet/wait.js';
import { describeLoad } from '../../tools/fleet/load.js';
import { steadyLoad, withFleet } from './fixture.js';

const fleet = withFleet({ nodes: 3, maxUnavailable: 1, variants: ['v2'] });

describe('registry down', () => {
  it('a hung registry takes nothing down; once it answers again, a push rolls out', async () => {
    const f = fleet();
    const marks = f.nodes.map((n) => n.agent.mark());
    const load = await steadyLoad(f, 150_000, 1_000);
    const hungAtMs = Date.now();
    f.pauseRegistry();
    await sleep(15_000);
    f.resumeRegistry();
    const resumedAtMs = Date.now();
    const during = f.recorder.events().filter((e) => e.atMs >= hungAtMs && e.action !== 'seed');
    const failedPolls = f.nodes.map((n, i) => n.agent.lines.slice(marks[i]).filter((l) => l.msg === 'registry poll failed; the service keeps running').length);

    const pushMarks = f.nodes.map((n) => n.agent.mark());
    const pushedAtMs = Date.now();
    const digest = await f.push('v2');
    const pushDoneMs = Date.now();
    await f.waitConverged(digest, 120_000);
    const convergedAtMs = Date.now();
    await sleep(1_000);
    const result = await load.stop();

    const events = await f.events();
    const firstGrant = events.find((e) => e.type === 'grant' && e.digest === digest);
    // A push notification that arrived while the agent was still backing off from the outage.
    const skipped = f.nodes.map((n, i) => {
      const lines = n.agent.lines.slice(pushMarks[i]);
      const asked = lines.findIndex((l) => l.msg === 'coordinator asked for a poll now (registry push)');
      return asked >= 0 && lines.slice(asked, asked + 5).some((l) => l.msg === 'registry backoff: skipping this poll');
    });
    const despite = f.nodes.filter((n, i) =>
      n.agent.lines.slice(pushMarks[i]).some((l) => l.msg === 'push notification: polling despite the registry backoff'),
    ).length;
    console.log(
      `agents polling despite their registry backoff: ${despite}; hung ${resumedAtMs - hungAtMs} ms; failed polls per agent ${JSON.stringify(failedPolls)}; push took ${pushDoneMs - pushedAtMs} ms; ` +
        `first grant ${firstGrant ? firstGrant.atMs - pushDoneMs : '-'} ms after the push; push notification skipped by backoff: ${JSON.stringify(skipped)}; ` +
        `converged ${convergedAtMs - pushDoneMs} ms after the push; load: ${describeLoad(result)}`,
    );
    expect(during, f.diagnostics(hungAtMs)).toEqual([]);
    expect(failedPolls.every((n) => n >= 1)).toBe(true);
    expect(result.failed, describeLoad(result)).toBe(0);
    expect(f.unavailability(pushedAtMs, Date.now()).maxDown).toBe(1);
    // F3 (test/e2e/FINDINGS.md, fixed in 17225f9): a push notification is not dropped while the agent
    // still backs off from the outage; the push proves the registry answers again.
    expect(skipped).toEqual(f.nodes.map(() => false));
    expect(firstGrant && firstGrant.atMs - pushDoneMs).toBeLessThan(8_000);
  }, 240_000);
});
