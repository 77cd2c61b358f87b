import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { eventSchema, leaseDecisionSchema, type LeaseGrant } from '../../shared/api/v1.js';
import { spawnCoordinatorProcess, type CoordinatorProcess } from '../../tools/fleet/coordinator.js';
import { replayLeaseLog } from '../../tools/fleet/fleet-sim.js';
import { eventually, sleep } from '../../tools/fleet/wait.js';
import { call, digestOf } from '../../tools/fleet/http.js';

const nodes = Array.from({ length: 8 }, (_, index) => `crash-${index}`);

function readEventLog(dataFile: string) {
  const db = new Database(dataFile, { readonly: true });
  try {
    const integrity = db.prepare('PRAGMA integrity_check').pluck().get();
    const rows = db
      .prepare(
        `SELECT seq, at_ms AS atMs, type, group_name AS "group", node_id AS nodeId, digest, lease_id AS leaseId,
                fencing_token AS fencingToken, reason, outcome, message FROM events ORDER BY seq`,
      )
      .all();
    return { integrity, events: rows.map((row) => eventSchema.parse(row)) };
  } finally {
    db.close();
  }
}

/**
 * kill -9 of the coordinator in the middle of a stream of grants and releases, then a restart
 * on the same file: every answered grant and release is still there, no two holders beyond
 * policy, and the event log is intact.
 */
describe('coordinator killed with SIGKILL mid-stream', () => {
  const directory = mkdtempSync(join(tmpdir(), 'baton-crash-'));
  const dataFile = join(directory, 'baton.db');
  let running: CoordinatorProcess | undefined;
  afterAll(async () => {
    await running?.kill('SIGKILL');
    rmSync(directory, { recursive: true, force: true });
  });

  it('loses no answered grant or release and keeps the log intact', async () => {
    running = await spawnCoordinatorProcess({ dataFile, environment: { BATON_LOG_LEVEL: 'info' } });
    const url = running.url;
    for (const nodeId of nodes) {
      await call(url, 'POST', `/v1/nodes/${nodeId}/heartbeat`, {
        json: { group: 'crash', host: nodeId, image: 'reg.local/app:1', currentDigest: digestOf('old'), health: 'healthy', agentVersion: 'test' },
      });
    }

    const answeredGrants: LeaseGrant[] = [];
    const answeredReleases: string[] = [];
    let heldAtKill: LeaseGrant | undefined;
    let killed = false;
    const stream = (async () => {
      let round = 0;
      while (!killed) {
        round += 1;
        const target = digestOf(`crash-round-${round}`);
        for (const nodeId of nodes) {
          if (killed) return;
          try {
            const answer = await call(url, 'POST', '/v1/leases', { json: { nodeId, group: 'crash', targetDigest: target } });
            const decision = leaseDecisionSchema.parse(answer.body);
            if (!decision.granted) continue;
            answeredGrants.push(decision);
            heldAtKill = decision;
            const released = await call(url, 'POST', `/v1/leases/${decision.leaseId}/release`, {
              json: { fencingToken: decision.fencingToken, outcome: 'updated' },
            });
            if (released.status === 200) {
              answeredReleases.push(decision.leaseId);
              heldAtKill = undefined;
            }
          } catch {
            return; // the coordinator is gone
          }
        }
      }
    })();

    // Killed once enough traffic was answered, however long a loaded machine takes to answer it.
    await eventually('25 grants answered', async () => (answeredGrants.length >= 25 ? true : undefined), 30_000);
    await sleep(200);
    killed = true;
    expect(await running.kill('SIGKILL')).toBeNull();
    await stream;
    expect(answeredGrants.length).toBeGreaterThan(20);

    const afterCrash = readEventLog(dataFile);
    expect(afterCrash.integrity).toBe('ok');
    const grantedIds = new Set(afterCrash.events.filter((e) => e.type === 'grant').map((e) => e.leaseId));
    const releasedIds = new Set(afterCrash.events.filter((e) => e.type === 'release').map((e) => e.leaseId));
    for (const grant of answeredGrants) expect(grantedIds.has(grant.leaseId), grant.leaseId).toBe(true);
    for (const leaseId of answeredReleases) expect(releasedIds.has(leaseId), leaseId).toBe(true);
    expect(replayLeaseLog(afterCrash.events).maxHolders.get('crash')).toBe(1);

    // Restart on the same file: a lease answered before the crash is still held and renewable;
    // nobody else gets a second one.
    running = await spawnCoordinatorProcess({ dataFile, environment: { BATON_LOG_LEVEL: 'info' } });
    for (const nodeId of nodes) {
      await call(running.url, 'POST', `/v1/nodes/${nodeId}/heartbeat`, {
        json: { group: 'crash', host: nodeId, image: 'reg.local/app:1', currentDigest: null, health: 'healthy', agentVersion: 'test' },
      });
    }
    // A release sent just before the kill may have committed with its answer lost: then the
    // durable log says so, and the lease stays ended.
    if (heldAtKill) {
      const renewed = await call(running.url, 'POST', `/v1/leases/${heldAtKill.leaseId}/renew`, {
        json: { fencingToken: heldAtKill.fencingToken },
      });
      if (releasedIds.has(heldAtKill.leaseId)) {
        expect(renewed.status).toBe(409);
        expect(renewed.body).toMatchObject({ error: 'lease-ended' });
        heldAtKill = undefined;
      } else {
        expect(renewed.status).toBe(200);
      }
    }
    if (heldAtKill) {
      const other = nodes.find((nodeId) => nodeId !== heldAtKill?.nodeId) as string;
      const refused = await call(running.url, 'POST', '/v1/leases', {
        json: { nodeId: other, group: 'crash', targetDigest: heldAtKill.targetDigest },
      });
      expect(refused.status).toBe(409);
    }
    const next = await call(running.url, 'POST', '/v1/leases', {
      json: { nodeId: nodes[0], group: 'crash', targetDigest: digestOf('after-restart') },
    });
    const decision = leaseDecisionSchema.parse(next.body);
    if (decision.granted) {
      const highest = Math.max(...answeredGrants.map((grant) => grant.fencingToken));
      expect(decision.fencingToken).toBeGreaterThan(highest);
    }
    await running.kill('SIGTERM');
    const final = readEventLog(dataFile);
    expect(final.integrity).toBe('ok');
    expect(replayLeaseLog(final.events).maxHolders.get('crash')).toBe(1);
    // The log only grew: every event from before the restart is unchanged.
    expect(final.events.slice(0, afterCrash.events.length)).toEqual(afterCrash.events);
  }, 60_000);
});
