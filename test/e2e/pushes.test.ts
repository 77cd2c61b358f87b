/**
 * End to end, on one fleet, pushes as users make them:
 * 1. A newer push while a rollout is in progress (I1, I2). v2 is pushed; once the first node runs
 *    it, v3 is pushed. The v2 rollout is superseded: no node starts a v2 update after that, a node
 *    mid-update finishes, and the whole fleet converges on v3, one node at a time, with no failed
 *    request. Every container any node ever started ran v1, v2 or v3.
 * 2. A rollout is a push, not a digest: v1, v2, v1, v2, v1 pushed one after another (each digest
 *    rolled out, or superseded, before) each converge; then `rollback` converges on the previous
 *    completed digest while the tag still points at v1, and stays there; `retry` rolls v1 out again.
 */
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { groupActionResponseSchema, type BatonEvent } from '../../shared/api/v1.js';
import { FLEET_GROUP } from '../../tools/fleet/fleet-names.js';
import { formatBatonEvents, replayLeases } from '../../tools/fleet/lease-log.js';
import { eventually, sleep } from '../../tools/fleet/wait.js';
import { describeLoad } from '../../tools/fleet/load.js';
import { lastEventSeq, steadyLoad, withFleet } from './fixture.js';

const fleet = withFleet({ nodes: 3, maxUnavailable: 1, variants: ['v2', 'v3'] });

describe('a newer push during a rollout', () => {
  it('v3 pushed while v2 rolls out: v2 is superseded, the fleet converges on v3', async () => {
    const f = fleet();
    const afterSeq = await lastEventSeq(f);
    const load = await steadyLoad(f, 150_000, 1_500);
    const pushedAtMs = Date.now();
    const v2 = await f.push('v2');
    await eventually(
      'one node on v2',
      async () => (await f.events(afterSeq)).find((e) => e.type === 'release' && e.digest === v2 && e.outcome === 'updated'),
      60_000,
      50,
    );
    const v3 = await f.push('v3');
    const v3PushedAtMs = Date.now();
    await f.waitConverged(v3, 120_000);
    const convergedAtMs = Date.now();
    await sleep(1_500);
    const result = await load.stop();

    const events = await f.events(afterSeq);
    const log = formatBatonEvents(events.filter((e) => e.type !== 'refusal'));
    const replay = replayLeases(events);
    const superseded = events.find((e) => e.type === 'rollout-superseded' && e.digest === v2);
    const starts = f.recorder.events().filter((e) => e.atMs >= pushedAtMs && e.action === 'start');
    const down = f.unavailability(pushedAtMs, Date.now());
    console.log(
      `v3 pushed ${v3PushedAtMs - pushedAtMs} ms after v2; converged on v3 ${convergedAtMs - v3PushedAtMs} ms after its push; ` +
        `grants: ${replay.grants.map((g) => `${g.nodeId}:${g.digest === v2 ? 'v2' : g.digest === v3 ? 'v3' : '?'}`).join(' ')}; ` +
        `load: ${describeLoad(result)}`,
    );

    expect(result.failed, `${describeLoad(result)}\n${f.diagnostics(pushedAtMs)}`).toBe(0);
    expect(down.maxDown, f.diagnostics(pushedAtMs)).toBe(1);
    expect(replay.maxHolders, log).toBe(1);
    expect(replay.tokensIncrease, log).toBe(true);
    expect(superseded, log).toBeDefined();
    // No v2 update starts once v2 is superseded.
    expect(replay.grants.filter((g) => g.digest === v2 && g.seq > (superseded?.seq ?? 0)), log).toEqual([]);
    // Every node updated to v3 exactly once.
    expect(replay.grants.filter((g) => g.digest === v3).map((g) => g.nodeId).sort(), log).toEqual(f.nodes.map((n) => n.id));
    // I2: only known digests ever ran; v2 containers only on nodes granted v2.
    const v2Nodes = new Set(replay.grants.filter((g) => g.digest === v2).map((g) => g.nodeId));
    expect(starts.every((s) => [f.digests.v1, v2, v3].includes(s.digest ?? ''))).toBe(true);
    expect(starts.filter((s) => s.digest === v2).every((s) => v2Nodes.has(s.node))).toBe(true);
    expect(events.some((e) => e.type === 'rollout-completed' && e.digest === v3), log).toBe(true);
  }, 240_000);

  it('v1, v2, v1, v2, v1 by pushes, then baton rollback and retry: every one converges, one node at a time, 0 failed requests', async () => {
    const f = fleet();
    const afterSeq = await lastEventSeq(f);
    const startedAtMs = Date.now();
    const load = await steadyLoad(f, 300_000, 1_500);
    const timings: string[] = [];
    const converge = async (label: string, digest: string, since: number): Promise<void> => {
      await f.waitConverged(digest, 90_000);
      timings.push(`${label} ${Date.now() - since} ms`);
    };
    for (const variant of ['v1', 'v2', 'v1', 'v2', 'v1'] as const) {
      const pushedAtMs = Date.now();
      await converge(`push ${variant}`, await f.push(variant), pushedAtMs);
    }
    const action = async (name: 'rollback' | 'retry') => {
      const answer = await request(`${f.coordinatorUrl}/v1/groups/${FLEET_GROUP}/${name}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ reason: `e2e ${name}` }),
      });
      const body: unknown = await answer.body.json();
      expect(answer.statusCode, JSON.stringify(body)).toBe(200);
      return groupActionResponseSchema.parse(body);
    };
    const rollbackAtMs = Date.now();
    const rolledBack = await action('rollback');
    expect(rolledBack.targetDigest).toBe(f.digests.v2);
    await converge('rollback to v2', f.digests.v2 as string, rollbackAtMs);
    // The tag still points at v1: the fleet stays on v2 (several polls of 2 s) until retried.
    await sleep(6_000);
    expect((await f.containers()).map((c) => c.digest)).toEqual(f.nodes.map(() => f.digests.v2));
    const retryAtMs = Date.now();
    expect((await action('retry')).targetDigest).toBe(f.digests.v1);
    await converge('retry of v1', f.digests.v1 as string, retryAtMs);
    await sleep(1_500);
    const result = await load.stop();

    const events = await f.events(afterSeq);
    const log = formatBatonEvents(events.filter((e) => e.type !== 'refusal' && e.type !== 'renew'));
    const replay = replayLeases(events);
    const down = f.unavailability(startedAtMs, Date.now());
    const opened = events.filter((e) => e.type === 'rollout-opened' && e.reason !== 'reopened');
    const name = (digest: string | null): string => (digest === f.digests.v1 ? 'v1' : digest === f.digests.v2 ? 'v2' : '?');
    console.log(`converged: ${timings.join(', ')}; rollouts: ${opened.map((e) => `${name(e.digest)}(${e.reason})`).join(' ')}; load: ${describeLoad(result)}`);

    expect(result.failed, `${describeLoad(result)}\n${f.diagnostics(startedAtMs)}`).toBe(0);
    expect(down.maxDown, f.diagnostics(startedAtMs)).toBe(1);
    expect(replay.maxHolders, log).toBe(1);
    expect(replay.tokensIncrease, log).toBe(true);
    expect(opened.map((e) => `${name(e.digest)}:${e.reason}`), log).toEqual([
      'v1:push',
      'v2:push',
      'v1:push',
      'v2:push',
      'v1:push',
      'v2:rollback',
      'v1:retry',
    ]);
    // Each of the seven rollouts updated every node exactly once.
    const updatedPerNode = (node: string): number =>
      events.filter((e: BatonEvent) => e.type === 'release' && e.outcome === 'updated' && e.nodeId === node).length;
    expect(f.nodes.map((n) => updatedPerNode(n.id)), log).toEqual(f.nodes.map(() => 7));
    const status = await f.status();
    expect(status.groups[0]?.rollout).toMatchObject({ seq: expect.any(Number), cause: 'retry', state: 'completed' });
  }, 420_000);
});
