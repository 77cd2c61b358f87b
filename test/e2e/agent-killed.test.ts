/**
 * End to end, scenario 4 (I1, I5): kill -9 of the agent of the node being updated, during drain,
 * during stop and during health. At most that one node is out; the others wait (its lease is still
 * held, and it is silent); when the agent is started again it reconciles, the node recovers and
 * the rollout completes. Every request through HAProxy succeeds throughout.
 */
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { type FleetNode } from '../../tools/fleet/fleet.js';
import { formatBatonEvents, replayLeases } from '../../tools/fleet/lease-log.js';
import { eventually, sleep } from '../../tools/fleet/wait.js';
import { describeLoad } from '../../tools/fleet/load.js';
import { lastEventSeq, steadyLoad, withFleet } from './fixture.js';

const fleet = withFleet({ nodes: 3, maxUnavailable: 1, variants: ['v2', 'v3'] }, async (f) => {
  await f.rebuild('v1', 'v1-rebuilt');
});

type Phase = 'drain' | 'stop' | 'health';

async function killMidUpdate(phase: Phase, label: string): Promise<void> {
  const f = fleet();
  const afterSeq = await lastEventSeq(f);
  const load = await steadyLoad(f, 150_000, 1_500);
  const pushedAtMs = Date.now();
  const digest = await f.pushLabel(label);

  // The first node granted a lease for the digest: the victim.
  const grant = await eventually(
    'a grant',
    async () => (await f.events(afterSeq)).find((e) => e.type === 'grant' && e.digest === digest),
    60_000,
    25,
  );
  const victim = f.nodes.find((n) => n.id === grant.nodeId) as FleetNode;
  const isVictim = (e: { node: string }): boolean => e.node === victim.id;

  if (phase === 'drain') {
    // Readiness says 503 (draining) while the old container still runs.
    await eventually('readiness 503', async () => ((await status(victim.config.readinessUrl)) === 503 ? true : undefined), 10_000, 20);
  } else if (phase === 'stop') {
    // A request straight to the app (not through HAProxy) keeps `docker stop` busy for its grace time.
    void request(`${victim.config.appUrl}/cgi-bin/slow?1.8`).then((r) => r.body.dump(), () => undefined);
    await eventually(
      'docker kill (SIGTERM) of the old container',
      () => f.recorder.events().find((e) => isVictim(e) && e.atMs >= pushedAtMs && e.action === 'kill'),
      15_000,
      10,
    );
  } else {
    await eventually(
      'the new container started',
      () => f.recorder.events().find((e) => isVictim(e) && e.action === 'start' && e.digest === digest),
      20_000,
      10,
    );
  }
  const killedLine = victim.agent.lines.at(-1);
  await f.killAgent(victim.index, 'SIGKILL');
  const killedAtMs = Date.now();

  // The agent is gone for a while: nobody else may go down meanwhile.
  await sleep(4_000);
  const othersWhileDead = f.recorder
    .events()
    .filter((e) => !isVictim(e) && e.atMs >= killedAtMs && ['kill', 'die', 'stop', 'start'].includes(e.action));
  const restartedAtMs = Date.now();
  const agent = await f.restartAgent(victim.index);
  const reconciled = await agent.waitForLine((l) => l.msg === 'reconciled', 30_000);
  await f.waitConverged(digest, 120_000);
  const convergedAtMs = Date.now();
  await sleep(1_500);
  const result = await load.stop();

  const events = await f.events(afterSeq);
  const log = formatBatonEvents(events.filter((e) => e.type !== 'refusal'));
  const down = f.unavailability(pushedAtMs, Date.now());
  console.log(
    `[${phase}] victim ${victim.id}, killed at +${killedAtMs - pushedAtMs} ms (last line: ${String(killedLine?.msg)} ${String(killedLine?.step ?? '')}); ` +
      `reconcile: ${String(reconciled.action)} ${JSON.stringify(reconciled.actions)}; converged ${convergedAtMs - restartedAtMs} ms after the restart; ` +
      `down: ${down.intervals.map((i) => `${i.node} ${i.toMs - i.fromMs} ms`).join(', ')}; load: ${describeLoad(result)}`,
  );

  if (process.env.BATON_E2E_VERBOSE) console.log(formatBatonEvents(events));
  expect(othersWhileDead, f.diagnostics(killedAtMs)).toEqual([]);
  expect(down.maxDown, f.diagnostics(pushedAtMs)).toBe(1);
  expect(result.failed, `${describeLoad(result)}\n${f.diagnostics(pushedAtMs)}`).toBe(0);
  const replay = replayLeases(events);
  expect(replay.maxHolders, log).toBe(1);
  expect(replay.tokensIncrease, log).toBe(true);
  // The victim's first lease ended (released `abandoned` by reconcile, or expired), never `failed`.
  expect(replay.releases.some((r) => r.outcome === 'failed'), log).toBe(false);
  expect(replay.grants.filter((g) => g.digest === digest).length, log).toBeGreaterThanOrEqual(4);
  expect(events.some((e) => e.type === 'rollout-completed' && e.digest === digest), log).toBe(true);
  expect(events.some((e) => e.type === 'halt'), log).toBe(false);
}

async function status(url: string): Promise<number | undefined> {
  try {
    const answer = await request(url, { headersTimeout: 1_000, bodyTimeout: 1_000 });
    await answer.body.dump();
    return answer.statusCode;
  } catch {
    return undefined;
  }
}

describe('agent killed mid-update', () => {
  it('during drain', () => killMidUpdate('drain', 'v2'), 240_000);
  it('during stop', () => killMidUpdate('stop', 'v3'), 240_000);
  it('during health', () => killMidUpdate('health', 'v1-rebuilt'), 240_000);
});
