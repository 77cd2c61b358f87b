import { afterAll, describe, expect, it } from 'vitest';
import { eventSchema, leaseDecisionSchema } from '../../shared/api/v1.js';
import { startInProcessCoordinator, type InProcessCoordinator } from '../../tools/fleet/coordinator.js';
import { replayLeaseLog } from '../../tools/fleet/fleet-sim.js';
import { sleep } from '../../tools/fleet/wait.js';
import { call, digestOf } from '../../tools/fleet/http.js';
import { z } from 'zod';

const agentCount = 50;
const rounds = 6;

/**
 * 50 agents race over real HTTP for the leases of one group: in each round every agent must
 * move to a new digest, one lease at a time (or two). The client side counts holders (a grant
 * is counted from its answer until just before its release is sent, so it can only
 * under-count the coordinator's holders); the coordinator's event log is replayed exactly.
 */
async function race(maxUnavailable: number): Promise<{ observedMaxHolders: number; tokens: number[]; coordinator: InProcessCoordinator }> {
  const coordinator = await startInProcessCoordinator({ config: { maxUnavailable } });
  const nodes = Array.from({ length: agentCount }, (_, index) => `agent-${String(index).padStart(2, '0')}`);
  let currentDigest = digestOf('round-0');
  // Every node heartbeats before each round, as agents do every few seconds: a node silent for the
  // miss limit (15 s) would rightly block every grant, and six rounds can take longer than that.
  const heartbeatAll = async (): Promise<void> => {
    for (const nodeId of nodes) {
      const answer = await call(coordinator.url, 'POST', `/v1/nodes/${nodeId}/heartbeat`, {
        json: { group: 'race', host: nodeId, image: 'reg.local/app:latest', currentDigest, health: 'healthy', agentVersion: 'test' },
      });
      expect(answer.status).toBe(200);
    }
  };

  let holding = 0;
  let observedMaxHolders = 0;
  const tokens: number[] = [];
  for (let round = 1; round <= rounds; round += 1) {
    await heartbeatAll();
    const target = digestOf(`round-${round}`);
    await Promise.all(
      nodes.map(async (nodeId) => {
        for (;;) {
          const answer = await call(coordinator.url, 'POST', '/v1/leases', { json: { nodeId, group: 'race', targetDigest: target } });
          const decision = leaseDecisionSchema.parse(answer.body);
          if (!decision.granted) {
            expect(['busy', 'unhealthy-peer']).toContain(decision.reason);
            await sleep(1 + Math.floor(Math.random() * 4));
            continue;
          }
          holding += 1;
          observedMaxHolders = Math.max(observedMaxHolders, holding);
          tokens.push(decision.fencingToken);
          const renewed = await call(coordinator.url, 'POST', `/v1/leases/${decision.leaseId}/renew`, {
            json: { fencingToken: decision.fencingToken },
          });
          expect(renewed.status).toBe(200);
          holding -= 1;
          const released = await call(coordinator.url, 'POST', `/v1/leases/${decision.leaseId}/release`, {
            json: { fencingToken: decision.fencingToken, outcome: 'updated' },
          });
          expect(released.status).toBe(200);
          return;
        }
      }),
    );
    currentDigest = target;
  }
  return { observedMaxHolders, tokens, coordinator };
}

describe.each([1, 2])('50 agents racing with maxUnavailable %i', (maxUnavailable) => {
  let coordinator: InProcessCoordinator | undefined;
  afterAll(async () => coordinator?.stop({ removeData: true }));

  it('never has more holders than allowed, and fencing tokens strictly increase', async () => {
    const result = await race(maxUnavailable);
    coordinator = result.coordinator;
    expect(result.tokens).toHaveLength(agentCount * rounds);
    expect(result.observedMaxHolders).toBeLessThanOrEqual(maxUnavailable);
    expect(new Set(result.tokens).size).toBe(result.tokens.length);

    const events = z
      .object({ events: z.array(eventSchema) })
      .parse((await call(result.coordinator.url, 'GET', '/v1/events?afterSeq=0&limit=1000')).body).events;
    const all = [...events];
    while (all.length > 0 && events.length === 1_000) {
      const next = z
        .object({ events: z.array(eventSchema) })
        .parse((await call(result.coordinator.url, 'GET', `/v1/events?afterSeq=${all[all.length - 1]?.seq}&limit=1000`)).body).events;
      if (next.length === 0) break;
      all.push(...next);
    }
    const replay = replayLeaseLog(all);
    expect(replay.grants).toBe(agentCount * rounds);
    expect(replay.maxHolders.get('race')).toBe(maxUnavailable);
  }, 120_000);
});
