/**
 * End to end: an operator drain through the same lease (issue 8, part 3). Three hosts, maxUnavailable
 * 2, steady load through HAProxy. `baton drain node-1` takes node-1 out of the balancer with no failed
 * request; a push of v2 then rolls out on node-2 and node-3 one at a time (the drain holds one of the
 * two slots), never more than two nodes out counting the drained one, while node-1 stays on v1 and
 * out; `baton undrain node-1` puts it back, and it updates to v2 last.
 */
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import type { BatonEvent } from '../../shared/api/v1.js';
import { batonCli } from '../../tools/fleet/coordinator.js';
import { FLEET_GROUP } from '../../tools/fleet/fleet-names.js';
import { formatBatonEvents, replayLeases } from '../../tools/fleet/lease-log.js';
import { sleep } from '../../tools/fleet/wait.js';
import { describeLoad } from '../../tools/fleet/load.js';
import { lastEventSeq, steadyLoad, withFleet } from './fixture.js';

const fleet = withFleet({ nodes: 3, maxUnavailable: 2, variants: ['v2'] });

function baton(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const f = fleet();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [batonCli, ...args], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', BATON_COORDINATOR: f.coordinatorUrl },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Nodes out of service by the coordinator's log: held leases plus drains, at most at once. */
function replayOutOfService(events: BatonEvent[]): { max: number; atSeq: number | undefined } {
  const leases = new Set<string>();
  const drains = new Set<string>();
  let max = 0;
  let atSeq: number | undefined;
  for (const e of [...events].sort((a, b) => a.seq - b.seq)) {
    if (e.group !== FLEET_GROUP) continue;
    if (e.type === 'grant') leases.add(e.leaseId ?? '');
    if (e.type === 'release' || e.type === 'expiry') leases.delete(e.leaseId ?? '');
    if (e.type === 'drain') drains.add(e.nodeId ?? '');
    if (e.type === 'undrain') drains.delete(e.nodeId ?? '');
    if (leases.size + drains.size > max) {
      max = leases.size + drains.size;
      atSeq = e.seq;
    }
  }
  return { max, atSeq };
}

describe('operator drain under load', () => {
  it('drain node-1: out of the balancer, 0 failed requests; v2 rolls out on the others one at a time; undrain: back, then updated', async () => {
    const f = fleet();
    const afterSeq = await lastEventSeq(f);
    const load = await steadyLoad(f, 300_000, 2_000);
    const startedAtMs = Date.now();

    // Drain: the CLI answers at once; the agent learns it at its next heartbeat and HAProxy follows.
    const drained = await baton(['drain', 'node-1', '--reason', 'kernel upgrade']);
    expect(drained.code, drained.stderr).toBe(0);
    expect(drained.stdout).toMatch(/^node-1 \(app\): drained since .*: kernel upgrade$/m);
    await f.haproxy.waitServer('node-1', 'DOWN', 20_000);
    const status = await f.status();
    const node1 = status.groups[0]?.nodes.find((n) => n.nodeId === 'node-1');
    expect(node1?.drained).toMatchObject({ reason: 'kernel upgrade' });
    const nodes = await baton(['nodes']);
    expect(nodes.stdout).toMatch(/^~ node-1 \(app\): drained for .*: kernel upgrade$/m);
    // Draining again changes nothing.
    const again = await baton(['drain', 'node-1', '--reason', 'another']);
    expect(again.stdout).toMatch(/already drained .*: kernel upgrade/);

    // v2: node-2 and node-3 update, one at a time, node-1 stays on v1 and out.
    const digest = await f.push('v2');
    const deadline = Date.now() + 120_000;
    for (;;) {
      const states = await f.containers();
      const others = states.filter((s) => s.node !== 'node-1');
      if (others.every((s) => s.digest === digest && s.running && s.health === 'healthy' && !s.hasOld)) break;
      if (Date.now() > deadline) throw new Error(`node-2 and node-3 did not update: ${JSON.stringify(states)}\n${f.diagnostics(startedAtMs)}`);
      await sleep(500);
    }
    await sleep(3_000);
    const midway = await f.containers();
    expect(midway.find((s) => s.node === 'node-1')?.digest).toBe(f.digests.v1);
    expect((await f.haproxy.serverStates()).find((s) => s.name === 'node-1')?.status).toBe('DOWN');

    // Undrain: back in the balancer, then it catches up.
    const undrained = await baton(['undrain', 'node-1']);
    expect(undrained.code, undrained.stderr).toBe(0);
    expect(undrained.stdout).toMatch(/^node-1 \(app\): undrained, back in service$/m);
    await f.waitConverged(digest, 120_000);
    await sleep(2_000);
    const result = await load.stop();
    const endMs = Date.now();
    console.log(`load: ${describeLoad(result)}`);

    // No request failed, from the drain to the end.
    expect(result.failed, `${describeLoad(result)}\n${f.diagnostics(startedAtMs)}`).toBe(0);
    expect(result.sent).toBeGreaterThan(100);

    const events = await f.events(afterSeq);
    const log = formatBatonEvents(events.filter((e) => e.type !== 'refusal'));
    const replay = replayLeases(events);
    // One rollout lease at a time (the drain holds the other slot), three grants for v2, node-1 last.
    expect(replay.maxHolders, log).toBe(1);
    expect(replay.grants.map((g) => g.digest), log).toEqual([digest, digest, digest]);
    expect(replay.grants.at(-1)?.nodeId, log).toBe('node-1');
    expect(replay.releases.map((r) => r.outcome), log).toEqual(['updated', 'updated', 'updated']);
    // Never more than maxUnavailable (2) out, counting the drain; and the drain did overlap a lease.
    expect(replayOutOfService(events).max, log).toBe(2);
    // The drain and undrain are in the log, and node-1's grant came after its undrain.
    const drainEvents = events.filter((e) => e.type === 'drain' || e.type === 'undrain');
    expect(drainEvents.map((e) => [e.type, e.nodeId]), log).toEqual([
      ['drain', 'node-1'],
      ['undrain', 'node-1'],
    ]);
    expect(replay.grants.at(-1)!.seq).toBeGreaterThan(drainEvents[1]!.seq);
    // The engines agree: one app container down at a time (a drained node keeps its container running).
    expect(f.unavailability(startedAtMs, endMs).maxDown, f.diagnostics(startedAtMs)).toBe(1);
  }, 420_000);
});
