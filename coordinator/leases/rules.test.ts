import { describe, expect, it } from 'vitest';
import type { GroupActionName, LeaseDecision, LeaseGrant, LeaseRefusal, MaxUnavailable, NodeHealth } from '../../shared/api/v1.js';
import { coordinatorConfigSchema } from '../../shared/config/coordinator.js';
import { seededRandom } from '../../shared/random.js';
import { applyChanges, emptyGroupState } from '../state/apply.js';
import {
  newEvent,
  type Change,
  type Decision,
  type GroupPolicy,
  type GroupState,
  type LeaseRecord,
  type NewEvent,
  type NodeRecord,
  type RolloutRecord,
} from '../state/model.js';
import { effectiveMaxUnavailable, resolvePolicy } from './policy.js';
import { digest, GROUP, lease, NEW, NEWER, node, OLD, pure, rollout, T0 } from './testing/rules.fixtures.js';
import {
  currentRollout,
  decideAcquire,
  decideForget,
  decideGroupAction,
  decideHeartbeat,
  decideRelease,
  decideRenew,
  expireLeases,
  heldLeases,
  isHeld,
  isSilent,
  progressOf,
  NEXT_IN_LINE_RETRY_MS,
  retryAfterMs,
  type AcquireResult,
  type ParsedHeartbeatRequest,
} from './rules.js';

// ---- Fixtures (the shared ones are in rules.fixtures.ts)

const TTL = 30_000;
const MISS_LIMIT = 15_000;
const POLICY: GroupPolicy = { maxUnavailable: 1, leaseTtlMs: TTL, heartbeatMissLimitMs: MISS_LIMIT };
const IDS = { leaseId: 'lease-new', rolloutId: 'rollout-new' };

interface Fixture {
  nodes?: NodeRecord[];
  rollouts?: RolloutRecord[];
  leases?: LeaseRecord[];
  paused?: boolean;
  lastFencingToken?: number;
}

/** A group that the store has written before (version 5), nodes a, b and c on OLD by default. */
function group(fixture: Fixture = {}): GroupState {
  const nodes = fixture.nodes ?? [node('a'), node('b'), node('c')];
  const leases = fixture.leases ?? [];
  return {
    group: {
      name: GROUP,
      paused: fixture.paused ?? false,
      lastFencingToken: fixture.lastFencingToken ?? Math.max(0, ...leases.map((l) => l.fencingToken)),
      version: 5,
    },
    nodes: new Map(nodes.map((n) => [n.nodeId, n])),
    rollouts: fixture.rollouts ?? [],
    activeLeases: new Map(leases.map((l) => [l.leaseId, l])),
    activeDrains: new Map(),
  };
}

/** A group rolling out NEW (rollout r-new), with `holder` holding lease l1 (token 1) if given. */
function rollingOut(holder?: string, fixture: Fixture = {}): GroupState {
  return group({
    rollouts: [rollout('r-new', NEW)],
    leases: holder === undefined ? [] : [lease('l1', holder)],
    ...fixture,
  });
}

/** Applies a decision's changes the way the service does (version bump included) and returns its result. */
function commit<Result>(state: GroupState, decision: Decision<Result>): Result {
  applyChanges(state, decision.changes);
  if (decision.changes.some((change) => change.kind !== 'heartbeat')) {
    state.group = { ...state.group, version: state.group.version + 1 };
  }
  return decision.result;
}

interface AcquireOptions {
  nowMs?: number;
  policy?: GroupPolicy;
  ids?: { leaseId: string; rolloutId: string };
  image?: string;
  /** The agent's observedAfterSeq; absent as from an older agent unless given. */
  observedAfterSeq?: number;
}

function acquire(state: GroupState, nodeId: string, targetDigest: string, options: AcquireOptions = {}) {
  const image = options.image === undefined ? {} : { image: options.image };
  const seq = options.observedAfterSeq === undefined ? {} : { observedAfterSeq: options.observedAfterSeq };
  const request = { nodeId, group: GROUP, targetDigest, ...image, ...seq };
  return pure(state, (s) =>
    decideAcquire(s, request, options.policy ?? POLICY, options.nowMs ?? T0, options.ids ?? IDS),
  );
}

function leaseDecision(result: AcquireResult): LeaseDecision {
  if (result.kind !== 'decision') throw new Error(`expected a decision, got ${result.kind}`);
  return result.decision;
}

function granted(result: AcquireResult): LeaseGrant {
  const decision = leaseDecision(result);
  if (!decision.granted) throw new Error(`expected a grant, got a refusal: ${decision.message}`);
  return decision;
}

function refused(result: AcquireResult): LeaseRefusal {
  const decision = leaseDecision(result);
  if (decision.granted) throw new Error('expected a refusal, got a grant');
  return decision;
}

/** Each node asks in turn, every answer committed before the next; lease ids are lease-<node>. */
function acquireInTurn(state: GroupState, nodeIds: string[], policy: GroupPolicy): LeaseDecision[] {
  return nodeIds.map((nodeId) => {
    const ids = { leaseId: `lease-${nodeId}`, rolloutId: 'r' };
    return leaseDecision(commit(state, acquire(state, nodeId, NEW, { policy, ids })));
  });
}

function heartbeatRequest(overrides: Partial<ParsedHeartbeatRequest> = {}): ParsedHeartbeatRequest {
  return {
    group: GROUP,
    host: 'a.example',
    image: 'registry.example/web:stable',
    currentDigest: OLD,
    health: 'healthy',
    step: 'idle',
    agentVersion: '0.1.0',
    ...overrides,
  };
}

function heartbeat(state: GroupState, nodeId: string, overrides: Partial<ParsedHeartbeatRequest> = {}, nowMs = T0) {
  return pure(state, (s) =>
    decideHeartbeat(s, nodeId, heartbeatRequest({ host: `${nodeId}.example`, ...overrides }), nowMs, false, 5_000),
  );
}

function event(type: NewEvent['type'], details: Partial<NewEvent> = {}, atMs = T0): Change {
  return { kind: 'append-event', event: newEvent({ type, group: GROUP, atMs, ...details }) };
}

const kinds = (changes: Change[]): string[] =>
  changes.map((change) => (change.kind === 'append-event' ? `event:${change.event.type}` : change.kind));

function eventsOf(changes: Change[]): NewEvent[] {
  return changes.flatMap((change) => (change.kind === 'append-event' ? [change.event] : []));
}

function rolloutsPut(changes: Change[]): RolloutRecord[] {
  return changes.flatMap((change) => (change.kind === 'put-rollout' ? [change.rollout] : []));
}

// ---- Policy

describe('resolvePolicy', () => {
  const config = coordinatorConfigSchema.parse({
    maxUnavailable: 2,
    leaseTtlMs: 40_000,
    heartbeatMissLimitMs: 20_000,
    groups: { api: { maxUnavailable: '25%' }, db: { leaseTtlMs: 120_000, heartbeatMissLimitMs: 60_000 } },
  });

  it('uses the top-level values for a group without overrides', () => {
    expect(resolvePolicy(config, 'web')).toEqual({
      maxUnavailable: 2,
      leaseTtlMs: 40_000,
      heartbeatMissLimitMs: 20_000,
    });
  });

  it('takes each overridden value from the group and the rest from the top level', () => {
    expect(resolvePolicy(config, 'api')).toEqual({
      maxUnavailable: '25%',
      leaseTtlMs: 40_000,
      heartbeatMissLimitMs: 20_000,
    });
    expect(resolvePolicy(config, 'db')).toEqual({
      maxUnavailable: 2,
      leaseTtlMs: 120_000,
      heartbeatMissLimitMs: 60_000,
    });
  });

  it('uses the defaults of the config schema', () => {
    expect(resolvePolicy(coordinatorConfigSchema.parse({}), 'web')).toEqual({
      maxUnavailable: 1,
      leaseTtlMs: 30_000,
      heartbeatMissLimitMs: 15_000,
    });
  });

  it('finds no overrides for a group named after an Object.prototype member', () => {
    expect(resolvePolicy(config, 'constructor').maxUnavailable).toBe(2);
    expect(resolvePolicy(config, '__proto__').leaseTtlMs).toBe(40_000);
  });
});

describe('effectiveMaxUnavailable', () => {
  const withMax = (maxUnavailable: MaxUnavailable): GroupPolicy => ({ ...POLICY, maxUnavailable });

  it('takes a whole number as is', () => {
    expect(effectiveMaxUnavailable(withMax(1), 10)).toBe(1);
    expect(effectiveMaxUnavailable(withMax(3), 10)).toBe(3);
    expect(effectiveMaxUnavailable(withMax(3), 2)).toBe(3);
  });

  it('rounds a percentage of the nodes down', () => {
    expect(effectiveMaxUnavailable(withMax('25%'), 10)).toBe(2);
    expect(effectiveMaxUnavailable(withMax('50%'), 4)).toBe(2);
    expect(effectiveMaxUnavailable(withMax('50%'), 5)).toBe(2);
    expect(effectiveMaxUnavailable(withMax('100%'), 7)).toBe(7);
  });

  it('never goes below 1', () => {
    expect(effectiveMaxUnavailable(withMax('25%'), 3)).toBe(1);
    expect(effectiveMaxUnavailable(withMax('50%'), 0)).toBe(1);
    expect(effectiveMaxUnavailable(withMax('0%'), 100)).toBe(1);
  });
});

// ---- Helpers

describe('reading the state', () => {
  it('currentRollout is the newest rollout, whatever its state', () => {
    expect(currentRollout(group())).toBeUndefined();
    const state = group({
      rollouts: [
        rollout('r1', OLD, { seq: 1, state: 'superseded' }),
        rollout('r2', NEW, { seq: 2, state: 'superseded' }),
        rollout('r3', NEWER, { seq: 3, state: 'halted' }),
      ],
    });
    expect(currentRollout(state)?.rolloutId).toBe('r3');
  });

  it('a node is silent only once its last heartbeat is older than the miss limit', () => {
    const n = node('a', { lastHeartbeatMs: T0 });
    expect(isSilent(n, POLICY, T0 + MISS_LIMIT)).toBe(false);
    expect(isSilent(n, POLICY, T0 + MISS_LIMIT + 1)).toBe(true);
  });

  it('a lease is held until its expiry, not at it', () => {
    const l = lease('l1', 'a', { expiresAtMs: T0 });
    expect(isHeld(l, T0 - 1)).toBe(true);
    expect(isHeld(l, T0)).toBe(false);
    const state = group({ leases: [l, lease('l2', 'b', { expiresAtMs: T0 + 1 })] });
    expect(heldLeases(state, T0).map((x) => x.leaseId)).toEqual(['l2']);
  });

  it('progressOf counts the nodes on the target and the leases out for the rollout', () => {
    const state = group({
      nodes: [node('a', { currentDigest: NEW }), node('b'), node('c', { currentDigest: null }), node('d')],
      rollouts: [rollout('r-old', OLD, { state: 'superseded' }), rollout('r-new', NEW)],
      leases: [lease('l1', 'b'), lease('l2', 'd', { rolloutId: 'r-old', targetDigest: OLD, fencingToken: 2 })],
    });
    expect(progressOf(state, rollout('r-new', NEW))).toEqual({ totalNodes: 4, onTarget: 1, updating: 1 });
  });

  it('retryAfterMs follows the TTL for busy and unhealthy peers, within 1 and 5 seconds', () => {
    expect(retryAfterMs('busy', POLICY)).toBe(5_000);
    expect(retryAfterMs('unhealthy-peer', { ...POLICY, leaseTtlMs: 12_000 })).toBe(2_000);
    expect(retryAfterMs('busy', { ...POLICY, leaseTtlMs: 10_000 })).toBe(1_667);
    expect(retryAfterMs('busy', { ...POLICY, leaseTtlMs: 3_000 })).toBe(1_000);
    expect(retryAfterMs('paused', POLICY)).toBe(10_000);
    expect(retryAfterMs('halted', POLICY)).toBe(60_000);
    expect(retryAfterMs('aborted', POLICY)).toBe(60_000);
    expect(retryAfterMs('superseded', POLICY)).toBe(60_000);
  });
});

// ---- Expiry

describe('expireLeases', () => {
  it('ends a lease at its expiry time exactly, with an expiry event', () => {
    const l1 = lease('l1', 'a', { expiresAtMs: T0, fencingToken: 4 });
    const state = rollingOut(undefined, { leases: [l1] });
    const decision = pure(state, (s) => expireLeases(s, T0));
    expect(decision.result).toEqual([l1]);
    expect(decision.changes).toEqual([
      { kind: 'put-lease', lease: { ...l1, endedAtMs: T0, endedAs: 'expired' } },
      event('expiry', { nodeId: 'a', digest: NEW, leaseId: 'l1', fencingToken: 4, message: expect.any(String) }),
    ]);
    commit(state, decision);
    expect(state.activeLeases.size).toBe(0);
  });

  it('leaves a lease alone until then', () => {
    const state = rollingOut(undefined, { leases: [lease('l1', 'a', { expiresAtMs: T0 + 1 })] });
    expect(pure(state, (s) => expireLeases(s, T0))).toEqual({ result: [], changes: [] });
  });

  it('ends every expired lease and only those', () => {
    const state = rollingOut(undefined, {
      leases: [
        lease('l1', 'a', { expiresAtMs: T0 - 1 }),
        lease('l2', 'b', { expiresAtMs: T0 + 1, fencingToken: 2 }),
        lease('l3', 'c', { expiresAtMs: T0, fencingToken: 3 }),
      ],
    });
    const decision = pure(state, (s) => expireLeases(s, T0));
    expect(decision.result.map((l) => l.leaseId)).toEqual(['l1', 'l3']);
    commit(state, decision);
    expect([...state.activeLeases.keys()]).toEqual(['l2']);
  });
});

// ---- Acquire

describe('decideAcquire: granting', () => {
  it('opens the rollout of a new digest and grants the first lease with fencing token 1', () => {
    const state = group();
    const decision = acquire(state, 'a', NEW, { image: 'registry.example/web:v2' });
    const expectedLease: LeaseRecord = {
      leaseId: 'lease-new',
      group: GROUP,
      nodeId: 'a',
      rolloutId: 'rollout-new',
      targetDigest: NEW,
      fencingToken: 1,
      grantedAtMs: T0,
      expiresAtMs: T0 + TTL,
      endedAtMs: null,
      endedAs: null,
    };
    expect(decision.changes).toEqual([
      {
        kind: 'put-rollout',
        rollout: {
          rolloutId: 'rollout-new',
          group: GROUP,
          seq: 1,
          cause: 'push',
          targetDigest: NEW,
          image: 'registry.example/web:v2',
          state: 'in-progress',
          openedAtMs: T0,
          endedAtMs: null,
          completedAtMs: null,
          rolledBackFrom: null,
          haltedByNodeId: null,
          haltReason: null,
        },
      },
      event('rollout-opened', { nodeId: 'a', digest: NEW, reason: 'push', message: expect.any(String) }),
      { kind: 'put-group', group: { name: GROUP, paused: false, lastFencingToken: 1, version: 5 } },
      { kind: 'put-lease', lease: expectedLease },
      event('grant', { nodeId: 'a', digest: NEW, leaseId: 'lease-new', fencingToken: 1 }),
    ]);
    expect(decision.result).toEqual({
      kind: 'decision',
      decision: {
        granted: true,
        leaseId: 'lease-new',
        fencingToken: 1,
        group: GROUP,
        nodeId: 'a',
        targetDigest: NEW,
        rolloutId: 'rollout-new',
        rolloutSeq: 1,
        ttlMs: TTL,
        expiresAtMs: T0 + TTL,
      },
    });
  });

  it('records a null image when the request names none', () => {
    expect(rolloutsPut(acquire(group(), 'a', NEW).changes)[0]?.image).toBeNull();
  });

  it('grants from the open rollout of the digest without opening another', () => {
    const decision = acquire(rollingOut(undefined, { lastFencingToken: 41 }), 'b', NEW);
    expect(kinds(decision.changes)).toEqual(['put-group', 'put-lease', 'event:grant']);
    expect(granted(decision.result)).toMatchObject({ rolloutId: 'r-new', fencingToken: 42 });
  });

  it('gives each grant the next fencing token of the group', () => {
    const state = group({ lastFencingToken: 9 });
    const decisions = acquireInTurn(state, ['a', 'b', 'c'], { ...POLICY, maxUnavailable: 3 });
    expect(decisions.map((d) => (d.granted ? d.fencingToken : 0))).toEqual([10, 11, 12]);
    expect(state.group.lastFencingToken).toBe(12);
  });

  it('answers a retry of the holder with the same lease and no changes', () => {
    const state = rollingOut('a');
    const decision = acquire(state, 'a', NEW, { nowMs: T0 + 3_000, ids: { leaseId: 'other', rolloutId: 'other' } });
    expect(decision.changes).toEqual([]);
    expect(granted(decision.result)).toEqual({
      granted: true,
      leaseId: 'l1',
      fencingToken: 1,
      group: GROUP,
      nodeId: 'a',
      targetDigest: NEW,
      rolloutId: 'r-new',
      rolloutSeq: 1,
      ttlMs: TTL,
      expiresAtMs: T0 + 25_000,
    });
  });

  it('does not count a lease past its expiry that was not ended yet', () => {
    const state = rollingOut(undefined, { leases: [lease('l1', 'a', { expiresAtMs: T0 })] });
    expect(granted(acquire(state, 'b', NEW).result).leaseId).toBe('lease-new');
  });

  it('treats a holder whose own lease has run out as asking anew', () => {
    const state = rollingOut(undefined, { leases: [lease('l1', 'a', { expiresAtMs: T0 - 1 })] });
    expect(granted(acquire(state, 'a', NEW).result)).toMatchObject({ leaseId: 'lease-new', fencingToken: 2 });
  });

  it('does not mind the health of the node that asks', () => {
    const state = rollingOut(undefined, { nodes: [node('a', { health: 'unhealthy' }), node('b')] });
    expect(granted(acquire(state, 'a', NEW).result).nodeId).toBe('a');
  });

  it('does not count an unhealthy lease holder as missing capacity', () => {
    const state = rollingOut('a', { nodes: [node('a', { health: 'starting' }), node('b'), node('c')] });
    const policy = { ...POLICY, maxUnavailable: 2 };
    expect(granted(acquire(state, 'b', NEW, { policy }).result).nodeId).toBe('b');
  });
});

describe('decideAcquire: refusals', () => {
  it('answers not-found, without changes, to a node that never sent a heartbeat', () => {
    const decision = acquire(group(), 'stranger', NEW);
    expect(decision.changes).toEqual([]);
    expect(decision.result).toEqual({ kind: 'not-found', message: expect.stringContaining('heartbeat') });
  });

  it('refuses busy to a node holding a lease for another digest, naming it', () => {
    const state = rollingOut('a');
    const decision = acquire(state, 'a', NEWER);
    const refusal = refused(decision.result);
    expect(refusal).toEqual({
      granted: false,
      reason: 'busy',
      retryAfterMs: 5_000,
      message: expect.stringContaining('l1'),
      rolloutSeq: 1,
    });
    expect(decision.changes).toEqual([
      event('refusal', { nodeId: 'a', digest: NEWER, reason: 'busy', message: refusal.message }),
    ]);
  });

  it('refuses busy when the group holds maxUnavailable leases', () => {
    const decision = acquire(rollingOut('a'), 'b', NEW);
    const refusal = refused(decision.result);
    // b is the only node waiting: first in line, it asks again soon.
    expect(refusal).toMatchObject({ reason: 'busy', retryAfterMs: NEXT_IN_LINE_RETRY_MS });
    expect(refusal.message).toContain('a');
    expect(decision.changes).toEqual([
      event('refusal', { nodeId: 'b', digest: NEW, reason: 'busy', message: refusal.message }),
    ]);
  });

  it('tells only the first maxUnavailable waiting nodes, by node id, to ask again soon', () => {
    const waiting = { step: 'lease' as const };
    const nodes = [
      node('a', { step: 'drain' }),
      node('b', waiting),
      node('c', waiting),
      node('d', { ...waiting, lastHeartbeatMs: T0 - MISS_LIMIT - 1 }), // silent: not in line
      node('e'),
      node('f'),
    ];
    const retryOf = (nodeId: string, policy: GroupPolicy = POLICY): number => {
      const busyState = rollingOut('a', { nodes });
      return refused(pure(busyState, (s) => decideAcquire(s, { nodeId, group: GROUP, targetDigest: NEW }, policy, T0, IDS)).result)
        .retryAfterMs;
    };
    expect(retryOf('b')).toBe(NEXT_IN_LINE_RETRY_MS);
    expect(retryOf('c')).toBe(5_000);
    // A node that has not reported its lease step yet still queues by its id.
    expect(retryOf('e')).toBe(5_000);
    const two = { ...POLICY, maxUnavailable: 2 };
    const twoHeld = rollingOut(undefined, { nodes, leases: [lease('l1', 'a'), lease('l2', 'e', { fencingToken: 2 })] });
    const refusedWithTwo = (nodeId: string) =>
      refused(decideAcquire(twoHeld, { nodeId, group: GROUP, targetDigest: NEW }, two, T0, IDS).result).retryAfterMs;
    expect([refusedWithTwo('b'), refusedWithTwo('c'), refusedWithTwo('f')]).toEqual([NEXT_IN_LINE_RETRY_MS, NEXT_IN_LINE_RETRY_MS, 5_000]);
  });

  it('with maxUnavailable 2, grants two leases and refuses the third', () => {
    const state = group({ rollouts: [rollout('r-new', NEW)], nodes: ['a', 'b', 'c', 'd'].map((id) => node(id)) });
    const results = acquireInTurn(state, ['a', 'b', 'c'], { ...POLICY, maxUnavailable: 2 });
    expect(results.map((r) => r.granted)).toEqual([true, true, false]);
    expect(results[2]).toMatchObject({ reason: 'busy' });
    expect(state.activeLeases.size).toBe(2);
  });

  it('with maxUnavailable "50%" of 4 nodes, grants two leases and refuses the third', () => {
    const state = group({ rollouts: [rollout('r-new', NEW)], nodes: ['a', 'b', 'c', 'd'].map((id) => node(id)) });
    const results = acquireInTurn(state, ['a', 'b', 'c'], { ...POLICY, maxUnavailable: '50%' });
    expect(results.map((r) => r.granted)).toEqual([true, true, false]);
  });

  it('refuses unhealthy-peer while another node is unhealthy, naming it', () => {
    const nodes = [node('a'), node('b', { health: 'unhealthy' }), node('c', { health: 'stopped' })];
    const state = rollingOut(undefined, { nodes });
    const decision = acquire(state, 'a', NEW);
    const refusal = refused(decision.result);
    expect(refusal).toMatchObject({ reason: 'unhealthy-peer', retryAfterMs: NEXT_IN_LINE_RETRY_MS });
    expect(refusal.message).toContain('b (unhealthy)');
    expect(refusal.message).toContain('c (stopped)');
    expect(decision.changes).toEqual([
      event('refusal', { nodeId: 'a', digest: NEW, reason: 'unhealthy-peer', message: refusal.message }),
    ]);
  });

  it.each<NodeHealth>(['starting', 'draining', 'unknown'])('counts a peer that is %s as out of service', (health) => {
    const state = rollingOut(undefined, { nodes: [node('a'), node('b', { health })] });
    expect(refused(acquire(state, 'a', NEW).result).reason).toBe('unhealthy-peer');
  });

  it('refuses unhealthy-peer while another node is silent, and not at the miss limit exactly', () => {
    const state = rollingOut(undefined, { nodes: [node('a'), node('b', { lastHeartbeatMs: T0 - MISS_LIMIT - 1 })] });
    const refusal = refused(acquire(state, 'a', NEW).result);
    expect(refusal.reason).toBe('unhealthy-peer');
    expect(refusal.message).toContain('b (silent for 15s)');
    const atLimit = rollingOut(undefined, { nodes: [node('a'), node('b', { lastHeartbeatMs: T0 - MISS_LIMIT })] });
    expect(granted(acquire(atLimit, 'a', NEW).result).nodeId).toBe('a');
  });

  it('names at most five missing peers', () => {
    const nodes = [node('a'), ...Array.from({ length: 8 }, (_, i) => node(`n${i}`, { health: 'unhealthy' }))];
    const refusal = refused(acquire(rollingOut(undefined, { nodes }), 'a', NEW).result);
    expect(refusal.message).toContain('n4 (unhealthy) and 3 more');
    expect(refusal.message).not.toContain('n5');
  });

  it('checks capacity before peers: busy wins over unhealthy-peer', () => {
    const state = rollingOut('a', { nodes: [node('a'), node('b'), node('c', { health: 'unhealthy' })] });
    expect(refused(acquire(state, 'b', NEW).result).reason).toBe('busy');
  });

  it('a silent node blocks grants until it sends a heartbeat again', () => {
    const state = rollingOut(undefined, { nodes: [node('a'), node('b'), node('c', { lastHeartbeatMs: T0 - 60_000 })] });
    expect(refused(commit(state, acquire(state, 'a', NEW))).reason).toBe('unhealthy-peer');
    commit(state, heartbeat(state, 'c'));
    expect(granted(commit(state, acquire(state, 'a', NEW))).nodeId).toBe('a');
  });

  it('a silent node blocks grants until it is forgotten', () => {
    const state = rollingOut(undefined, { nodes: [node('a'), node('b'), node('c', { lastHeartbeatMs: T0 - 60_000 })] });
    expect(refused(commit(state, acquire(state, 'a', NEW))).reason).toBe('unhealthy-peer');
    commit(state, pure(state, (s) => decideForget(s, 'c', T0)));
    expect(granted(commit(state, acquire(state, 'a', NEW))).nodeId).toBe('a');
  });

  it('refuses paused while the group is paused, with a 10 s retry', () => {
    const state = rollingOut(undefined, { paused: true, rollouts: [rollout('r-new', NEW, { state: 'paused' })] });
    const decision = acquire(state, 'a', NEW);
    const refusal = refused(decision.result);
    expect(refusal).toMatchObject({ reason: 'paused', retryAfterMs: 10_000 });
    expect(decision.changes).toEqual([
      event('refusal', { nodeId: 'a', digest: NEW, reason: 'paused', message: refusal.message }),
    ]);
  });

  it('opens a new digest paused in a paused group, and keeps the opening although it refuses', () => {
    const state = group({ paused: true, rollouts: [rollout('r-old', OLD, { state: 'paused' })] });
    const decision = acquire(state, 'a', NEW);
    expect(refused(decision.result).reason).toBe('paused');
    expect(kinds(decision.changes)).toEqual([
      'put-rollout',
      'event:rollout-superseded',
      'put-rollout',
      'event:rollout-opened',
      'event:refusal',
    ]);
    commit(state, decision);
    expect(state.rollouts.map((r) => [r.rolloutId, r.state])).toEqual([
      ['r-old', 'superseded'],
      ['rollout-new', 'paused'],
    ]);
  });

  it('keeps the opening of a rollout when the grant is refused busy', () => {
    const state = group({
      rollouts: [rollout('r-old', OLD)],
      leases: [lease('l1', 'a', { rolloutId: 'r-old', targetDigest: OLD })],
    });
    const decision = acquire(state, 'b', NEW);
    expect(refused(decision.result).reason).toBe('busy');
    commit(state, decision);
    expect(currentRollout(state)).toMatchObject({ rolloutId: 'rollout-new', targetDigest: NEW, state: 'in-progress' });
  });
});

describe('decideAcquire: rollouts', () => {
  it('supersedes the current rollout when a new push arrives, and leaves the older ones as they ended', () => {
    const state = group({
      rollouts: [
        rollout('r1', digest(10), { seq: 1, state: 'halted', endedAtMs: T0 - 9_000 }),
        rollout('r2', digest(11), { seq: 2, state: 'superseded', endedAtMs: T0 - 8_000 }),
        rollout('r3', OLD, { seq: 3, state: 'in-progress' }),
      ],
    });
    const decision = acquire(state, 'a', NEW, { observedAfterSeq: 3 });
    expect(granted(decision.result)).toMatchObject({ rolloutId: 'rollout-new', rolloutSeq: 4 });
    expect(rolloutsPut(decision.changes).map((r) => [r.rolloutId, r.seq, r.state, r.endedAtMs])).toEqual([
      ['r3', 3, 'superseded', T0],
      ['rollout-new', 4, 'in-progress', null],
    ]);
    expect(eventsOf(decision.changes).filter((e) => e.type === 'rollout-superseded')).toEqual([
      expect.objectContaining({ digest: OLD, message: expect.stringContaining(NEW) }),
    ]);
  });

  it('supersedes a paused rollout too', () => {
    const state = group({ rollouts: [rollout('r-old', OLD, { state: 'paused' })] });
    const changes = acquire(state, 'a', NEW, { observedAfterSeq: 1 }).changes;
    expect(rolloutsPut(changes)[0]).toMatchObject({ rolloutId: 'r-old', state: 'superseded' });
  });

  it('refuses an agent that sent no seq a digest the group rolled out before (older agents)', () => {
    const state = group({ rollouts: [rollout('r-old', OLD, { seq: 1, state: 'superseded' }), rollout('r-new', NEW, { seq: 2 })] });
    const decision = acquire(state, 'a', OLD);
    const refusal = refused(decision.result);
    expect(refusal).toMatchObject({ reason: 'superseded', retryAfterMs: 60_000, rolloutSeq: 2 });
    expect(refusal.message).toContain(NEW);
    expect(kinds(decision.changes)).toEqual(['event:refusal']);
  });

  it('refuses an aborted digest', () => {
    const state = group({ rollouts: [rollout('r-new', NEW, { state: 'aborted', endedAtMs: T0 - 1 })] });
    const decision = acquire(state, 'a', NEW, { observedAfterSeq: 1 });
    expect(refused(decision.result)).toMatchObject({ reason: 'aborted', retryAfterMs: 60_000 });
    expect(kinds(decision.changes)).toEqual(['event:refusal']);
  });

  it('refuses a halted digest, and grants a newer one that fixes forward', () => {
    const state = group({
      rollouts: [
        rollout('r-new', NEW, { state: 'halted', endedAtMs: T0 - 1, haltedByNodeId: 'c', haltReason: 'boom' }),
      ],
    });
    const decision = acquire(state, 'a', NEW, { observedAfterSeq: 1 });
    const refusal = refused(commit(state, decision));
    expect(refusal).toMatchObject({ reason: 'halted', retryAfterMs: 60_000 });
    expect(refusal.message).toContain('boom');
    expect(kinds(decision.changes)).toEqual(['event:refusal']);

    const fix = acquire(state, 'a', NEWER, { ids: { leaseId: 'l-fix', rolloutId: 'r-fix' }, observedAfterSeq: 1 });
    expect(granted(commit(state, fix))).toMatchObject({ rolloutId: 'r-fix', targetDigest: NEWER, rolloutSeq: 2 });
    expect(state.rollouts.map((r) => [r.rolloutId, r.state])).toEqual([
      ['r-new', 'halted'],
      ['r-fix', 'in-progress'],
    ]);
  });

  it('reopens a completed rollout for a node that is still behind', () => {
    const state = group({ rollouts: [rollout('r-new', NEW, { state: 'completed', endedAtMs: T0 - 1, completedAtMs: T0 - 1 })] });
    const decision = acquire(state, 'a', NEW);
    expect(granted(decision.result).rolloutId).toBe('r-new');
    expect(decision.changes[0]).toEqual({
      kind: 'put-rollout',
      rollout: rollout('r-new', NEW, { state: 'in-progress', endedAtMs: null, completedAtMs: T0 - 1 }),
    });
    expect(eventsOf(decision.changes)[0]).toMatchObject({ type: 'rollout-opened', reason: 'reopened' });
    expect(kinds(decision.changes)).toEqual([
      'put-rollout',
      'event:rollout-opened',
      'put-group',
      'put-lease',
      'event:grant',
    ]);
  });

  it('reopens a completed rollout as paused in a paused group, and refuses', () => {
    const state = group({ paused: true, rollouts: [rollout('r-new', NEW, { state: 'completed', endedAtMs: T0 - 1 })] });
    const decision = acquire(state, 'a', NEW);
    expect(refused(decision.result).reason).toBe('paused');
    expect(rolloutsPut(decision.changes)).toEqual([rollout('r-new', NEW, { state: 'paused', endedAtMs: null })]);
  });
});

describe('decideAcquire: a rollout is a push, not a digest', () => {
  // The group's current rollout is seq 4; NEW was already rolled out by an earlier one (seq 2).
  const history = (current: Partial<RolloutRecord>): RolloutRecord[] => [
    rollout('r1', OLD, { seq: 1, state: 'superseded', completedAtMs: T0 - 50_000, endedAtMs: T0 - 40_000 }),
    rollout('r2', NEW, { seq: 2, state: 'superseded', completedAtMs: T0 - 30_000, endedAtMs: T0 - 20_000 }),
    rollout('r3', OLD, { seq: 3, state: 'superseded', completedAtMs: T0 - 15_000, endedAtMs: T0 - 10_000 }),
    rollout('r4', NEWER, { seq: 4, ...current }),
  ];
  const states: Array<[string, Partial<RolloutRecord>]> = [
    ['in progress', { state: 'in-progress' }],
    ['completed', { state: 'completed', endedAtMs: T0 - 1, completedAtMs: T0 - 1 }],
    ['halted', { state: 'halted', endedAtMs: T0 - 1, haltedByNodeId: 'c', haltReason: 'boom' }],
    ['aborted', { state: 'aborted', endedAtMs: T0 - 1 }],
    ['paused', { state: 'paused' }],
  ];
  const expectations: Record<string, string> = {
    'in progress': 'superseded',
    completed: 'superseded',
    halted: 'halted',
    aborted: 'aborted',
    paused: 'superseded',
  };

  it.each(states)('the current rollout %s: a digest seen after it opened is a new push, even one rolled out before', (name, current) => {
    const state = group({ rollouts: history(current) });
    const decision = acquire(state, 'a', NEW, { observedAfterSeq: 4 });
    const result = leaseDecision(commit(state, decision));
    expect(result).toMatchObject({ granted: true, rolloutSeq: 5, targetDigest: NEW });
    expect(state.rollouts.map((r) => [r.seq, r.state])).toEqual([
      [1, 'superseded'],
      [2, 'superseded'],
      [3, 'superseded'],
      [4, expectations[name]],
      [5, 'in-progress'],
    ]);
    expect(eventsOf(decision.changes).find((e) => e.type === 'rollout-opened')).toMatchObject({ digest: NEW, reason: 'push' });
  });

  it.each(states)('the current rollout %s: a digest seen before it opened is stale, and changes nothing but the refusal', (_name, current) => {
    const state = group({ rollouts: history(current) });
    const decision = acquire(state, 'a', NEW, { observedAfterSeq: 3 });
    const refusal = refused(decision.result);
    expect(refusal).toMatchObject({ reason: 'stale', retryAfterMs: 0, rolloutSeq: 4 });
    expect(refusal.message).toContain('poll again');
    expect(kinds(decision.changes)).toEqual(['event:refusal']);
  });

  it('the current rollout\'s own digest joins it whatever the agent saw before (a late node)', () => {
    const state = group({ rollouts: history({ state: 'in-progress' }) });
    expect(granted(acquire(state, 'a', NEWER, { observedAfterSeq: 0 }).result)).toMatchObject({ rolloutId: 'r4', rolloutSeq: 4 });
  });

  it('a halted digest stays halted for its own rollout, however late the agent looked', () => {
    const state = group({ rollouts: history({ state: 'halted', endedAtMs: T0 - 1 }) });
    expect(refused(acquire(state, 'a', NEWER, { observedAfterSeq: 4 }).result).reason).toBe('halted');
  });

  it('the first push of a group opens rollout 1 whatever the agent knew', () => {
    expect(granted(acquire(group(), 'a', NEW, { observedAfterSeq: 0 }).result)).toMatchObject({ rolloutSeq: 1 });
  });

  it('v1, v2, v1, v2, v1: every push opens a rollout and every node can be granted it', () => {
    const state = group({ nodes: [node('a')] });
    const digests = [NEW, OLD, NEW, OLD, NEW];
    digests.forEach((target, index) => {
      const known = currentRollout(state)?.seq ?? 0;
      const ids = { leaseId: `l-${index}`, rolloutId: `r-${index}` };
      const grant = granted(commit(state, acquire(state, 'a', target, { ids, observedAfterSeq: known })));
      commit(state, pure(state, (s) => decideRelease(s, grant.leaseId, { fencingToken: grant.fencingToken, outcome: 'updated' }, T0)));
      expect(currentRollout(state)).toMatchObject({ seq: index + 1, targetDigest: target, state: 'completed' });
    });
    expect(state.rollouts.map((r) => r.state)).toEqual(['superseded', 'superseded', 'superseded', 'superseded', 'completed']);
  });
});

// ---- Renew

function renew(state: GroupState, leaseId: string, fencingToken: number, nowMs = T0, endedLease?: LeaseRecord) {
  return pure(state, (s) => decideRenew(s, leaseId, { fencingToken }, POLICY, nowMs, endedLease));
}

describe('decideRenew', () => {
  it('extends the lease by the TTL from now', () => {
    const state = rollingOut('a');
    const decision = renew(state, 'l1', 1, T0 + 10_000);
    expect(decision.result).toEqual({
      kind: 'renewed',
      response: { leaseId: 'l1', fencingToken: 1, ttlMs: TTL, expiresAtMs: T0 + 10_000 + TTL },
    });
    expect(decision.changes).toEqual([
      { kind: 'put-lease', lease: lease('l1', 'a', { expiresAtMs: T0 + 10_000 + TTL }) },
      event('renew', { nodeId: 'a', digest: NEW, leaseId: 'l1', fencingToken: 1 }, T0 + 10_000),
    ]);
  });

  it('answers not-found for a lease it has never seen', () => {
    const decision = renew(rollingOut('a'), 'nope', 1);
    expect(decision).toEqual({ result: { kind: 'not-found', message: expect.any(String) }, changes: [] });
  });

  it('answers lease-ended for a lease the store has ended', () => {
    const ended = lease('l0', 'a', { endedAtMs: T0 - 1, endedAs: 'abandoned' });
    const decision = renew(rollingOut(), 'l0', 1, T0, ended);
    expect(decision).toEqual({
      result: { kind: 'lease-ended', endedAs: 'abandoned', message: expect.any(String) },
      changes: [],
    });
  });

  it('answers stale-token, with no changes at all, to a different fencing token', () => {
    expect(renew(rollingOut('a'), 'l1', 2)).toEqual({
      result: { kind: 'stale-token', message: expect.any(String) },
      changes: [],
    });
  });

  it('answers stale-token even when the lease has also run out', () => {
    expect(renew(rollingOut('a'), 'l1', 7, T0 + 25_000).changes).toEqual([]);
  });

  it('refuses a renew at the expiry time exactly and records the expiry', () => {
    const decision = renew(rollingOut('a'), 'l1', 1, T0 + 25_000);
    expect(decision.result).toEqual({ kind: 'lease-ended', endedAs: 'expired', message: expect.any(String) });
    expect(decision.changes).toEqual([
      { kind: 'put-lease', lease: lease('l1', 'a', { endedAtMs: T0 + 25_000, endedAs: 'expired' }) },
      event(
        'expiry',
        { nodeId: 'a', digest: NEW, leaseId: 'l1', fencingToken: 1, message: expect.any(String) },
        T0 + 25_000,
      ),
    ]);
  });

  it('renews one millisecond before the expiry', () => {
    expect(renew(rollingOut('a'), 'l1', 1, T0 + 24_999).result.kind).toBe('renewed');
  });
});

// ---- Release

function release(
  state: GroupState,
  leaseId: string,
  request: { fencingToken: number; outcome: 'updated' | 'failed' | 'abandoned'; message?: string },
  nowMs = T0,
  endedLease?: LeaseRecord,
) {
  return pure(state, (s) => decideRelease(s, leaseId, request, nowMs, endedLease));
}

describe('decideRelease', () => {
  it('updated: ends the lease and records the node on the target digest, healthy and idle', () => {
    const state = rollingOut('a', { nodes: [node('a', { health: 'starting', step: 'health' }), node('b'), node('c')] });
    const decision = release(state, 'l1', { fencingToken: 1, outcome: 'updated' });
    expect(decision.changes).toEqual([
      { kind: 'put-lease', lease: lease('l1', 'a', { endedAtMs: T0, endedAs: 'updated' }) },
      event('release', { nodeId: 'a', digest: NEW, leaseId: 'l1', fencingToken: 1, outcome: 'updated' }),
      { kind: 'heartbeat', node: node('a', { currentDigest: NEW, health: 'healthy', step: 'idle' }) },
    ]);
    expect(decision.result).toEqual({
      kind: 'released',
      response: { leaseId: 'l1', outcome: 'updated', rolloutState: 'in-progress' },
    });
  });

  it('updated by the last node behind completes the rollout', () => {
    const state = rollingOut('c', {
      nodes: [node('a', { currentDigest: NEW }), node('b', { currentDigest: NEW }), node('c')],
      leases: [lease('l1', 'c')],
    });
    const decision = release(state, 'l1', { fencingToken: 1, outcome: 'updated', message: 'ok' });
    expect(decision.result).toMatchObject({ kind: 'released', response: { rolloutState: 'completed' } });
    expect(decision.changes.slice(3)).toEqual([
      { kind: 'put-rollout', rollout: rollout('r-new', NEW, { state: 'completed', endedAtMs: T0, completedAtMs: T0 }) },
      event('rollout-completed', { digest: NEW, message: expect.any(String) }),
    ]);
    expect(eventsOf(decision.changes)[0]?.message).toBe('ok');
  });

  it('updated does not complete the rollout while another lease is out', () => {
    const state = rollingOut(undefined, {
      nodes: [node('a', { currentDigest: NEW }), node('b'), node('c')],
      leases: [lease('l1', 'b'), lease('l2', 'c', { fencingToken: 2, targetDigest: NEW })],
    });
    // c is already on NEW as far as its heartbeats tell, but still holds its lease.
    state.nodes.set('c', node('c', { currentDigest: NEW }));
    const decision = release(state, 'l1', { fencingToken: 1, outcome: 'updated' });
    expect(decision.result).toMatchObject({ response: { rolloutState: 'in-progress' } });
    expect(rolloutsPut(decision.changes)).toEqual([]);
  });

  it('failed: halts the rollout, naming the node and its message', () => {
    const state = rollingOut('a');
    const decision = release(state, 'l1', { fencingToken: 1, outcome: 'failed', message: 'HTTP 500 on /health' });
    expect(decision.changes).toEqual([
      { kind: 'put-lease', lease: lease('l1', 'a', { endedAtMs: T0, endedAs: 'failed' }) },
      event('release', {
        nodeId: 'a',
        digest: NEW,
        leaseId: 'l1',
        fencingToken: 1,
        outcome: 'failed',
        message: 'HTTP 500 on /health',
      }),
      {
        kind: 'put-rollout',
        rollout: rollout('r-new', NEW, {
          state: 'halted',
          endedAtMs: T0,
          haltedByNodeId: 'a',
          haltReason: 'HTTP 500 on /health',
        }),
      },
      event('halt', {
        nodeId: 'a',
        digest: NEW,
        leaseId: 'l1',
        fencingToken: 1,
        reason: 'HTTP 500 on /health',
        message: expect.any(String),
      }),
    ]);
    expect(decision.result).toMatchObject({ response: { outcome: 'failed', rolloutState: 'halted' } });
  });

  it('failed without a message halts with "health checks failed", and the digest is refused after', () => {
    const state = rollingOut('a');
    commit(state, release(state, 'l1', { fencingToken: 1, outcome: 'failed' }));
    expect(state.rollouts[0]?.haltReason).toBe('health checks failed');
    expect(refused(acquire(state, 'b', NEW).result).reason).toBe('halted');
  });

  it('a second failure keeps the first node as the one that halted the rollout', () => {
    const state = rollingOut(undefined, { leases: [lease('l1', 'a'), lease('l2', 'b', { fencingToken: 2 })] });
    commit(state, release(state, 'l1', { fencingToken: 1, outcome: 'failed', message: 'first' }));
    const second = release(state, 'l2', { fencingToken: 2, outcome: 'failed', message: 'second' });
    expect(kinds(second.changes)).toEqual(['put-lease', 'event:release']);
    commit(state, second);
    expect(state.rollouts[0]).toMatchObject({ state: 'halted', haltedByNodeId: 'a', haltReason: 'first' });
  });

  it('failed on a superseded rollout leaves it superseded', () => {
    const state = group({
      rollouts: [rollout('r-new', NEW, { state: 'superseded' }), rollout('r-newer', NEWER)],
      leases: [lease('l1', 'a')],
    });
    const decision = release(state, 'l1', { fencingToken: 1, outcome: 'failed' });
    expect(rolloutsPut(decision.changes)).toEqual([]);
    expect(decision.result).toMatchObject({ response: { rolloutState: 'superseded' } });
  });

  it('updated on a halted rollout records the node but does not complete it', () => {
    const state = group({
      nodes: [node('a', { currentDigest: NEW }), node('b')],
      rollouts: [rollout('r-new', NEW, { state: 'halted', haltedByNodeId: 'x' })],
      leases: [lease('l1', 'b')],
    });
    const decision = release(state, 'l1', { fencingToken: 1, outcome: 'updated' });
    expect(kinds(decision.changes)).toEqual(['put-lease', 'event:release', 'heartbeat']);
    expect(decision.result).toMatchObject({ response: { rolloutState: 'halted' } });
  });

  it('abandoned: only ends the lease', () => {
    const state = rollingOut('a');
    const decision = release(state, 'l1', { fencingToken: 1, outcome: 'abandoned', message: 'shutting down' });
    expect(decision.changes).toEqual([
      { kind: 'put-lease', lease: lease('l1', 'a', { endedAtMs: T0, endedAs: 'abandoned' }) },
      event('release', {
        nodeId: 'a',
        digest: NEW,
        leaseId: 'l1',
        fencingToken: 1,
        outcome: 'abandoned',
        message: 'shutting down',
      }),
    ]);
    expect(decision.result).toMatchObject({ response: { outcome: 'abandoned', rolloutState: 'in-progress' } });
  });

  it('abandoned by the last holder completes a rollout every node has already reached', () => {
    const nodes = [node('a', { currentDigest: NEW }), node('b', { currentDigest: NEW })];
    const state = rollingOut('b', { nodes });
    const decision = release(state, 'l1', { fencingToken: 1, outcome: 'abandoned' });
    expect(kinds(decision.changes)).toEqual(['put-lease', 'event:release', 'put-rollout', 'event:rollout-completed']);
    expect(decision.result).toMatchObject({ response: { rolloutState: 'completed' } });
  });

  it('frees the capacity: the next node gets a lease', () => {
    const state = rollingOut('a');
    commit(state, release(state, 'l1', { fencingToken: 1, outcome: 'abandoned' }));
    expect(granted(acquire(state, 'b', NEW).result).fencingToken).toBe(2);
  });

  it('answers stale-token, with no changes at all, to a different fencing token', () => {
    expect(release(rollingOut('a'), 'l1', { fencingToken: 9, outcome: 'updated' })).toEqual({
      result: { kind: 'stale-token', message: expect.any(String) },
      changes: [],
    });
  });

  it('answers not-found for a lease it has never seen', () => {
    expect(release(rollingOut('a'), 'x', { fencingToken: 1, outcome: 'updated' })).toEqual({
      result: { kind: 'not-found', message: expect.any(String) },
      changes: [],
    });
  });

  it('refuses a late release after the expiry and only records the expiry', () => {
    const state = rollingOut('a');
    const decision = release(state, 'l1', { fencingToken: 1, outcome: 'updated' }, T0 + 25_000);
    expect(decision.result).toEqual({ kind: 'lease-ended', endedAs: 'expired', message: expect.any(String) });
    expect(kinds(decision.changes)).toEqual(['put-lease', 'event:expiry']);
  });

  it('refuses a late release whose expiry is already recorded, with no changes', () => {
    const state = rollingOut('a');
    commit(state, expireLeases(state, T0 + 25_000));
    const ended = lease('l1', 'a', { endedAtMs: T0 + 25_000, endedAs: 'expired' });
    expect(release(state, 'l1', { fencingToken: 1, outcome: 'updated' }, T0 + 26_000, ended)).toEqual({
      result: { kind: 'lease-ended', endedAs: 'expired', message: expect.any(String) },
      changes: [],
    });
    expect(state.rollouts[0]?.state).toBe('in-progress');
  });

  it('refuses a late failed release but still halts its digest, so no other node starts it (I3)', () => {
    const state = rollingOut('a');
    commit(state, expireLeases(state, T0 + 25_000));
    const ended = lease('l1', 'a', { endedAtMs: T0 + 25_000, endedAs: 'expired' });
    const decision = release(state, 'l1', { fencingToken: 1, outcome: 'failed', message: 'unhealthy' }, T0 + 26_000, ended);
    expect(decision.result).toEqual({ kind: 'lease-ended', endedAs: 'expired', message: expect.any(String) });
    expect(kinds(decision.changes)).toEqual(['put-rollout', 'event:halt']);
    commit(state, decision);
    expect(state.rollouts[0]?.state).toBe('halted');
    expect(refused(acquire(state, 'b', NEW, { nowMs: T0 + 27_000 }).result).reason).toBe('halted');
  });

  it('ignores a late failed release with a stale token', () => {
    const state = rollingOut('a');
    commit(state, expireLeases(state, T0 + 25_000));
    const ended = lease('l1', 'a', { endedAtMs: T0 + 25_000, endedAs: 'expired' });
    expect(release(state, 'l1', { fencingToken: 7, outcome: 'failed' }, T0 + 26_000, ended).changes).toEqual([]);
  });
});

// ---- Heartbeat

describe('decideHeartbeat', () => {
  it('creates a new group with its first node', () => {
    const state = emptyGroupState(GROUP);
    const decision = heartbeat(state, 'a', { currentDigest: null });
    expect(decision.changes).toEqual([
      { kind: 'put-group', group: { name: GROUP, paused: false, lastFencingToken: 0, version: 0 } },
      { kind: 'put-node', node: node('a', { currentDigest: null, joinedAtMs: T0 }) },
      event('node-joined', { nodeId: 'a', digest: null, message: expect.any(String) }),
    ]);
    expect(decision.result).toEqual({
      pollNow: false,
      paused: false,
      heartbeatIntervalMs: 5_000,
      targetDigest: null,
      rolloutState: null,
      rolloutSeq: 0,
      rolledBackFrom: null,
      drained: null,
    });
  });

  it('adds a new node to a known group durably, without touching the group', () => {
    const decision = heartbeat(group(), 'd');
    expect(decision.changes).toEqual([
      { kind: 'put-node', node: node('d', { joinedAtMs: T0 }) },
      event('node-joined', { nodeId: 'd', digest: OLD, message: expect.any(String) }),
    ]);
  });

  it('records a known node as a soft heartbeat, keeping when it joined', () => {
    const state = group({ nodes: [node('a', { lastHeartbeatMs: T0 - 5_000, health: 'starting' })] });
    const decision = heartbeat(state, 'a', { health: 'healthy', step: 'poll', agentVersion: '0.2.0' });
    expect(decision.changes).toEqual([
      { kind: 'heartbeat', node: node('a', { health: 'healthy', step: 'poll', agentVersion: '0.2.0' }) },
    ]);
  });

  it('answers with the open rollout, the pause and the pending poll', () => {
    const state = group({ paused: true, rollouts: [rollout('r-new', NEW, { state: 'paused' })] });
    const decision = pure(state, (s) => decideHeartbeat(s, 'a', heartbeatRequest(), T0, true, 7_000));
    expect(decision.result).toEqual({
      pollNow: true,
      paused: true,
      heartbeatIntervalMs: 7_000,
      targetDigest: NEW,
      rolloutState: 'paused',
      rolloutSeq: 1,
      rolledBackFrom: null,
      drained: null,
    });
  });

  it('names a completed rollout as the target', () => {
    const state = group({ rollouts: [rollout('r-new', NEW, { state: 'completed' })] });
    expect(heartbeat(state, 'a').result).toMatchObject({ targetDigest: NEW, rolloutState: 'completed' });
  });

  it.each(['halted', 'aborted'] as const)('names no target when the current rollout is %s', (rolloutState) => {
    const state = group({ rollouts: [rollout('r-new', NEW, { state: rolloutState })] });
    expect(heartbeat(state, 'a').result).toMatchObject({ targetDigest: null, rolloutState });
  });

  it('completes the rollout when the last node reports the target and no lease is out', () => {
    const nodes = [node('a', { currentDigest: NEW }), node('b', { currentDigest: NEW }), node('c')];
    const state = rollingOut(undefined, { nodes });
    const decision = heartbeat(state, 'c', { currentDigest: NEW });
    expect(kinds(decision.changes)).toEqual(['heartbeat', 'put-rollout', 'event:rollout-completed']);
    expect(rolloutsPut(decision.changes)).toEqual([rollout('r-new', NEW, { state: 'completed', endedAtMs: T0, completedAtMs: T0 })]);
    expect(decision.result).toMatchObject({ targetDigest: NEW, rolloutState: 'completed' });
  });

  it('completes the rollout when a joining node is already on the target', () => {
    const state = rollingOut(undefined, { nodes: [node('a', { currentDigest: NEW })] });
    expect(kinds(heartbeat(state, 'b', { currentDigest: NEW }).changes)).toEqual([
      'put-node',
      'event:node-joined',
      'put-rollout',
      'event:rollout-completed',
    ]);
  });

  it('does not complete while a lease is out, while nodes are behind, or while paused', () => {
    const allOnNew = [node('a', { currentDigest: NEW }), node('b', { currentDigest: NEW })];
    const withLease = rollingOut('b', { nodes: allOnNew });
    expect(kinds(heartbeat(withLease, 'a', { currentDigest: NEW }).changes)).toEqual(['heartbeat']);
    const behind = rollingOut(undefined, { nodes: [node('a', { currentDigest: NEW }), node('b')] });
    expect(kinds(heartbeat(behind, 'a', { currentDigest: NEW }).changes)).toEqual(['heartbeat']);
    const paused = group({ paused: true, nodes: allOnNew, rollouts: [rollout('r-new', NEW, { state: 'paused' })] });
    expect(kinds(heartbeat(paused, 'a', { currentDigest: NEW }).changes)).toEqual(['heartbeat']);
  });

  it('a new joiner behind the target keeps the rollout open', () => {
    const state = group({
      nodes: [node('a', { currentDigest: NEW })],
      rollouts: [rollout('r-new', NEW, { state: 'completed' })],
    });
    const decision = heartbeat(state, 'b', { currentDigest: OLD });
    expect(kinds(decision.changes)).toEqual(['put-node', 'event:node-joined']);
  });
});

// ---- Operator actions

function groupAction(state: GroupState, action: GroupActionName, reason?: string) {
  return pure(state, (s) => decideGroupAction(s, action, reason, T0, 'rollout-new'));
}

describe('decideGroupAction', () => {
  it('pause: pauses the group and its rollout in progress', () => {
    const state = rollingOut();
    const decision = groupAction(state, 'pause', 'lunch');
    expect(decision.changes).toEqual([
      { kind: 'put-group', group: { name: GROUP, paused: true, lastFencingToken: 0, version: 5 } },
      { kind: 'put-rollout', rollout: rollout('r-new', NEW, { state: 'paused' }) },
      event('pause', { digest: NEW, reason: 'lunch' }),
    ]);
    expect(decision.result).toEqual({ kind: 'done', response: { group: GROUP, paused: true, rolloutState: 'paused', rolloutSeq: 1, targetDigest: NEW } });
  });

  it('pause: pauses a group without a rollout', () => {
    const decision = groupAction(group(), 'pause');
    expect(kinds(decision.changes)).toEqual(['put-group', 'event:pause']);
    expect(decision.result).toEqual({ kind: 'done', response: { group: GROUP, paused: true, rolloutState: null, rolloutSeq: 0, targetDigest: null } });
  });

  it('pause: leaves a halted or completed rollout as it is', () => {
    const state = group({ rollouts: [rollout('r-new', NEW, { state: 'halted' })] });
    expect(kinds(groupAction(state, 'pause').changes)).toEqual(['put-group', 'event:pause']);
  });

  it('pause is idempotent', () => {
    const state = group({ paused: true, rollouts: [rollout('r-new', NEW, { state: 'paused' })] });
    expect(groupAction(state, 'pause')).toEqual({
      result: { kind: 'done', response: { group: GROUP, paused: true, rolloutState: 'paused', rolloutSeq: 1, targetDigest: NEW } },
      changes: [],
    });
  });

  it('resume: resumes the group and its paused rollout', () => {
    const state = group({ paused: true, rollouts: [rollout('r-new', NEW, { state: 'paused' })] });
    const decision = groupAction(state, 'resume');
    expect(decision.changes).toEqual([
      { kind: 'put-group', group: { name: GROUP, paused: false, lastFencingToken: 0, version: 5 } },
      { kind: 'put-rollout', rollout: rollout('r-new', NEW, { state: 'in-progress' }) },
      event('resume', { digest: NEW }),
    ]);
    expect(decision.result).toEqual({
      kind: 'done',
      response: { group: GROUP, paused: false, rolloutState: 'in-progress', rolloutSeq: 1, targetDigest: NEW },
    });
  });

  it('resume completes a rollout whose nodes all finished while it was paused', () => {
    const state = group({
      paused: true,
      nodes: [node('a', { currentDigest: NEW })],
      rollouts: [rollout('r-new', NEW, { state: 'paused' })],
    });
    const decision = groupAction(state, 'resume');
    expect(kinds(decision.changes)).toEqual([
      'put-group',
      'put-rollout',
      'event:resume',
      'put-rollout',
      'event:rollout-completed',
    ]);
    expect(decision.result).toMatchObject({ response: { rolloutState: 'completed' } });
  });

  it('resume is idempotent', () => {
    expect(groupAction(rollingOut(), 'resume')).toEqual({
      result: { kind: 'done', response: { group: GROUP, paused: false, rolloutState: 'in-progress', rolloutSeq: 1, targetDigest: NEW } },
      changes: [],
    });
  });

  it('pause, then resume, lets grants through again', () => {
    const state = rollingOut();
    commit(state, groupAction(state, 'pause'));
    expect(refused(acquire(state, 'a', NEW).result).reason).toBe('paused');
    commit(state, groupAction(state, 'resume'));
    expect(granted(acquire(state, 'a', NEW).result).nodeId).toBe('a');
  });

  it.each(['in-progress', 'paused'] as const)('abort: aborts a rollout that is %s', (rolloutState) => {
    const paused = rolloutState === 'paused';
    const state = group({ paused, rollouts: [rollout('r-new', NEW, { state: rolloutState })] });
    const decision = groupAction(state, 'abort', 'bad build');
    expect(decision.changes).toEqual([
      { kind: 'put-rollout', rollout: rollout('r-new', NEW, { state: 'aborted', endedAtMs: T0 }) },
      event('abort', { digest: NEW, reason: 'bad build' }),
    ]);
    expect(decision.result).toEqual({
      kind: 'done',
      response: { group: GROUP, paused, rolloutState: 'aborted', rolloutSeq: 1, targetDigest: NEW },
    });
  });

  it('abort: later requests for the digest are refused aborted', () => {
    const state = rollingOut();
    commit(state, groupAction(state, 'abort'));
    expect(refused(acquire(state, 'a', NEW).result).reason).toBe('aborted');
  });

  const ended = ['completed', 'halted', 'aborted'] as const;
  it.each(ended)('abort: conflict, with no changes, when the rollout is %s', (rolloutState) => {
    const state = group({ rollouts: [rollout('r-new', NEW, { state: rolloutState })] });
    expect(groupAction(state, 'abort')).toEqual({
      result: { kind: 'conflict', message: expect.stringContaining(rolloutState) },
      changes: [],
    });
  });

  it('abort: conflict when the group has no rollout', () => {
    expect(groupAction(group(), 'abort')).toEqual({
      result: { kind: 'conflict', message: expect.any(String) },
      changes: [],
    });
  });
});

// ---- Forget

describe('decideGroupAction: rollback and retry', () => {
  // v1 (OLD) completed as rollout 1, v2 (NEW) is rollout 2.
  const rolledOut = (current: Partial<RolloutRecord>): GroupState =>
    group({
      rollouts: [
        rollout('r1', OLD, { seq: 1, state: 'superseded', completedAtMs: T0 - 20_000, endedAtMs: T0 - 10_000 }),
        rollout('r2', NEW, { seq: 2, ...current }),
      ],
    });

  it.each([
    ['in progress', { state: 'in-progress' }],
    ['completed', { state: 'completed', completedAtMs: T0 - 1, endedAtMs: T0 - 1 }],
    ['halted', { state: 'halted', endedAtMs: T0 - 1 }],
  ] as Array<[string, Partial<RolloutRecord>]>)('rollback of a rollout %s opens rollout 3 back to the previous completed digest', (_name, current) => {
    const state = rolledOut(current);
    const decision = groupAction(state, 'rollback', 'error rate');
    expect(decision.result).toEqual({
      kind: 'done',
      response: { group: GROUP, paused: false, rolloutState: 'in-progress', rolloutSeq: 3, targetDigest: OLD },
    });
    commit(state, decision);
    expect(currentRollout(state)).toMatchObject({ seq: 3, cause: 'rollback', targetDigest: OLD, rolledBackFrom: NEW, state: 'in-progress' });
    const opened = eventsOf(decision.changes).find((e) => e.type === 'rollout-opened');
    expect(opened).toMatchObject({ digest: OLD, reason: 'rollback', nodeId: null });
    expect(opened?.message).toContain('error rate');
    // Nodes get the rollback through the lease path, as for a push.
    expect(granted(acquire(state, 'a', OLD, { observedAfterSeq: 3 }).result)).toMatchObject({ rolloutSeq: 3, targetDigest: OLD });
  });

  it('heartbeats tell agents to run the rollback\'s target while the tag shows the digest rolled back from', () => {
    const state = rolledOut({ state: 'completed', completedAtMs: T0 - 1 });
    commit(state, groupAction(state, 'rollback'));
    expect(heartbeat(state, 'a').result).toMatchObject({ targetDigest: OLD, rolledBackFrom: NEW, rolloutSeq: 3 });
  });

  it('after a rollback, the tag\'s digest is refused rolled-back until retried; another push opens normally', () => {
    const state = rolledOut({ state: 'completed', completedAtMs: T0 - 1 });
    commit(state, groupAction(state, 'rollback'));
    expect(refused(acquire(state, 'a', NEW, { observedAfterSeq: 3 }).result)).toMatchObject({ reason: 'rolled-back', retryAfterMs: 60_000 });
    expect(granted(acquire(state, 'a', NEWER, { observedAfterSeq: 3 }).result)).toMatchObject({ rolloutSeq: 4, targetDigest: NEWER });

    commit(state, pure(state, (s) => decideGroupAction(s, 'retry', 'fixed the config', T0, 'r-retry')));
    expect(currentRollout(state)).toMatchObject({ seq: 4, cause: 'retry', targetDigest: NEW, rolledBackFrom: null });
    expect(state.rollouts.at(-2)).toMatchObject({ seq: 3, state: 'superseded' });
    expect(granted(acquire(state, 'a', NEW, { observedAfterSeq: 3 }).result)).toMatchObject({ rolloutSeq: 4 });
  });

  it('retry of a halted rollout opens a new rollout of the same digest, which can be granted', () => {
    const state = rolledOut({ state: 'halted', endedAtMs: T0 - 1, haltedByNodeId: 'c', haltReason: 'boom' });
    expect(refused(acquire(state, 'a', NEW, { observedAfterSeq: 2 }).result).reason).toBe('halted');
    commit(state, groupAction(state, 'retry'));
    expect(state.rollouts.map((r) => [r.seq, r.state])).toEqual([
      [1, 'superseded'],
      [2, 'halted'],
      [3, 'in-progress'],
    ]);
    expect(granted(acquire(state, 'a', NEW, { observedAfterSeq: 2 }).result)).toMatchObject({ rolloutSeq: 3, targetDigest: NEW });
  });

  it('retry of an aborted rollout opens it again', () => {
    const state = rolledOut({ state: 'aborted', endedAtMs: T0 - 1 });
    commit(state, groupAction(state, 'retry'));
    expect(currentRollout(state)).toMatchObject({ seq: 3, cause: 'retry', targetDigest: NEW, state: 'in-progress' });
  });

  it.each([
    ['in progress', { state: 'in-progress' }],
    ['completed', { state: 'completed' }],
  ] as Array<[string, Partial<RolloutRecord>]>)('retry: conflict, with no changes, when the rollout is %s', (_name, current) => {
    const decision = groupAction(rolledOut(current), 'retry');
    expect(decision).toEqual({ result: { kind: 'conflict', message: expect.stringContaining('nothing to retry') }, changes: [] });
  });

  it('rollback: conflict, with no changes, without an earlier completed digest', () => {
    expect(groupAction(group(), 'rollback')).toEqual({ result: { kind: 'conflict', message: expect.stringContaining('no rollout yet') }, changes: [] });
    const first = group({ rollouts: [rollout('r1', NEW, { seq: 1, state: 'completed', completedAtMs: T0 - 1 })] });
    expect(groupAction(first, 'rollback')).toEqual({ result: { kind: 'conflict', message: expect.stringContaining('nothing to roll back to') }, changes: [] });
  });

  it('rollback skips an earlier rollout that never completed', () => {
    const state = group({
      rollouts: [
        rollout('r1', OLD, { seq: 1, state: 'superseded', completedAtMs: T0 - 30_000 }),
        rollout('r2', NEWER, { seq: 2, state: 'halted' }),
        rollout('r3', NEW, { seq: 3, state: 'completed', completedAtMs: T0 - 1 }),
      ],
    });
    commit(state, groupAction(state, 'rollback'));
    expect(currentRollout(state)).toMatchObject({ seq: 4, targetDigest: OLD, rolledBackFrom: NEW });
  });
});

describe('decideForget', () => {
  it('answers not-found for an unknown node', () => {
    expect(pure(group(), (s) => decideForget(s, 'zz', T0))).toEqual({
      result: { kind: 'not-found', message: expect.any(String) },
      changes: [],
    });
  });

  it('deletes the node with an event', () => {
    const decision = pure(group(), (s) => decideForget(s, 'b', T0));
    expect(decision).toEqual({
      result: { kind: 'forgotten', endedLeases: [] },
      changes: [
        { kind: 'delete-node', group: GROUP, nodeId: 'b' },
        event('node-forgotten', { nodeId: 'b', digest: OLD }),
      ],
    });
  });

  it('ends the lease of the node as forgotten', () => {
    const state = rollingOut('b');
    const decision = pure(state, (s) => decideForget(s, 'b', T0));
    const ended = lease('l1', 'b', { endedAtMs: T0, endedAs: 'forgotten' });
    expect(decision).toEqual({
      result: { kind: 'forgotten', endedLeases: [ended] },
      changes: [
        { kind: 'put-lease', lease: ended },
        { kind: 'delete-node', group: GROUP, nodeId: 'b' },
        event('node-forgotten', { nodeId: 'b', digest: OLD, leaseId: 'l1', fencingToken: 1 }),
      ],
    });
    commit(state, decision);
    expect(state.activeLeases.size).toBe(0);
    expect(granted(acquire(state, 'a', NEW).result).fencingToken).toBe(2);
  });

  it('completes the rollout when the last node behind is forgotten', () => {
    const nodes = [node('a', { currentDigest: NEW }), node('b', { currentDigest: NEW }), node('c')];
    const state = rollingOut('c', { nodes });
    const decision = pure(state, (s) => decideForget(s, 'c', T0));
    expect(kinds(decision.changes)).toEqual([
      'put-lease',
      'delete-node',
      'event:node-forgotten',
      'put-rollout',
      'event:rollout-completed',
    ]);
  });
});

// ---- Simulation

interface SimAgent {
  nodeId: string;
  digest: string;
  up: boolean;
  sick: boolean;
  lease: { leaseId: string; fencingToken: number; digest: string } | undefined;
}

interface SimStats {
  grants: number;
  refusals: Map<string, number>;
  expiries: number;
  halts: number;
  completions: number;
  maxActive: number;
}

/**
 * 50 agents behave at random against the rules the way the service drives them: expiry first,
 * then one decision, its changes applied. After every step, at most maxUnavailable leases are
 * out and every new grant carries a greater fencing token than the one before.
 */
function simulate(maxUnavailable: MaxUnavailable, seed: number, steps: number): SimStats {
  const random = seededRandom(seed);
  const policy: GroupPolicy = { maxUnavailable, leaseTtlMs: 10_000, heartbeatMissLimitMs: 15_000 };
  const state = emptyGroupState('sim');
  const agents: SimAgent[] = Array.from({ length: 50 }, (_, i) => ({
    nodeId: `node-${i}`,
    digest: digest(100),
    up: true,
    sick: false,
    lease: undefined,
  }));
  const stats: SimStats = { grants: 0, refusals: new Map(), expiries: 0, halts: 0, completions: 0, maxActive: 0 };
  let nowMs = T0;
  let nextId = 0;
  let target = digest(101);
  let lastToken = 0;

  const apply = <Result>(decision: Decision<Result>): Result => {
    for (const e of eventsOf(decision.changes)) {
      if (e.type === 'expiry') stats.expiries += 1;
      if (e.type === 'halt') stats.halts += 1;
      if (e.type === 'rollout-completed') stats.completions += 1;
    }
    return commit(state, decision);
  };
  const pick = <T>(items: T[]): T | undefined => items[Math.floor(random.next() * items.length)];

  const heartbeatAll = (): void => {
    for (const agent of agents.filter((a) => a.up)) {
      const health = agent.sick ? 'unhealthy' : agent.lease === undefined ? 'healthy' : 'draining';
      const request = heartbeatRequest({ group: 'sim', host: agent.nodeId, currentDigest: agent.digest, health });
      apply(decideHeartbeat(state, agent.nodeId, request, nowMs, false, 5_000));
    }
  };

  const tryAcquire = (): void => {
    const agent = pick(agents.filter((a) => a.up && a.lease === undefined && a.digest !== target));
    if (agent === undefined) return;
    const request = { nodeId: agent.nodeId, group: 'sim', targetDigest: target };
    const ids = { leaseId: `lease-${++nextId}`, rolloutId: `rollout-${nextId}` };
    const result = apply(decideAcquire(state, request, policy, nowMs, ids));
    if (result.kind !== 'decision') return;
    const { decision } = result;
    if (!decision.granted) {
      stats.refusals.set(decision.reason, (stats.refusals.get(decision.reason) ?? 0) + 1);
      return;
    }
    expect(decision.leaseId).toBe(ids.leaseId);
    expect(decision.fencingToken).toBeGreaterThan(lastToken);
    expect(decision.fencingToken).toBe(state.group.lastFencingToken);
    expect(currentRollout(state)).toMatchObject({ targetDigest: target, state: 'in-progress' });
    expect(state.activeLeases.size).toBeLessThanOrEqual(effectiveMaxUnavailable(policy, state.nodes.size));
    lastToken = decision.fencingToken;
    stats.grants += 1;
    agent.lease = { leaseId: decision.leaseId, fencingToken: decision.fencingToken, digest: decision.targetDigest };
  };

  const holder = (): SimAgent | undefined => pick(agents.filter((a) => a.up && a.lease !== undefined));

  const tryRenew = (): void => {
    const agent = holder();
    if (agent?.lease === undefined) return;
    const stale = random.next() < 0.1;
    const fencingToken = stale ? agent.lease.fencingToken + 1 : agent.lease.fencingToken;
    const decision = decideRenew(state, agent.lease.leaseId, { fencingToken }, policy, nowMs);
    if (stale) expect(decision.changes).toEqual([]);
    const result = apply(decision);
    if (result.kind === 'lease-ended' || result.kind === 'not-found') agent.lease = undefined;
  };

  const tryRelease = (): void => {
    const agent = holder();
    if (agent?.lease === undefined) return;
    const roll = random.next();
    const outcome = roll < 0.9 ? 'updated' : roll < 0.92 ? 'failed' : 'abandoned';
    const { leaseId, fencingToken } = agent.lease;
    apply(decideRelease(state, leaseId, { fencingToken, outcome }, nowMs));
    if (outcome === 'updated') agent.digest = agent.lease.digest;
    // Released or refused (stale, ended, unknown), the agent is done with this lease either way.
    agent.lease = undefined;
  };

  // Trouble is rare and passes: a fleet that is always missing a node would never roll out.
  const troubleAgent = (): void => {
    const agent = pick(agents);
    if (agent === undefined) return;
    if (random.next() < 0.5) agent.sick = true;
    else agent.up = false;
  };

  const recoverAgent = (): void => {
    const agent = pick(agents.filter((a) => a.sick || !a.up));
    if (agent === undefined) return;
    agent.sick = false;
    agent.up = true;
  };

  const forgetDownAgent = (): void => {
    const agent = pick(agents.filter((a) => !a.up && state.nodes.has(a.nodeId)));
    if (agent === undefined) return;
    apply(decideForget(state, agent.nodeId, nowMs));
    agent.lease = undefined;
  };

  // The operator fixes forward after a halt or abort, resumes soon, and now and then interferes.
  const operate = (step: number): void => {
    const current = currentRollout(state);
    const roll = random.next();
    if (state.group.paused) apply(decideGroupAction(state, 'resume', undefined, nowMs, `r-${nowMs}`));
    else if (current !== undefined && current.state !== 'in-progress') target = digest(102 + step);
    else if (roll < 0.15) apply(decideGroupAction(state, 'pause', 'look', nowMs, `r-${nowMs}`));
    else if (roll < 0.2) apply(decideGroupAction(state, 'abort', 'nope', nowMs, `r-${nowMs}`));
    else if (roll < 0.3) target = digest(102 + step);
  };

  const checkInvariants = (): void => {
    // Forgetting nodes can shrink a percentage below the leases already out; never below 50 nodes' worth.
    expect(state.activeLeases.size).toBeLessThanOrEqual(effectiveMaxUnavailable(policy, agents.length));
    const holders = [...state.activeLeases.values()].map((l) => l.nodeId);
    expect(new Set(holders).size).toBe(holders.length);
    for (const nodeId of holders) expect(state.nodes.has(nodeId)).toBe(true);
    stats.maxActive = Math.max(stats.maxActive, state.activeLeases.size);
  };

  for (let step = 0; step < steps; step += 1) {
    nowMs += Math.floor(random.next() * 500);
    apply(expireLeases(state, nowMs));
    const roll = random.next();
    if (roll < 0.2) heartbeatAll();
    else if (roll < 0.5) tryAcquire();
    else if (roll < 0.62) tryRenew();
    else if (roll < 0.8) tryRelease();
    else if (roll < 0.88) nowMs += Math.floor(random.next() * 12_000);
    else if (roll < 0.9) troubleAgent();
    else if (roll < 0.95) recoverAgent();
    else if (roll < 0.995) forgetDownAgent();
    else operate(step);
    checkInvariants();
  }
  return stats;
}

describe('simulation: 50 nodes, random acquire, renew, release, heartbeat and time', () => {
  it.each<[MaxUnavailable, number]>([
    [1, 1],
    [1, 2],
    [2, 3],
    [2, 4],
    ['10%', 5],
  ])('never exceeds maxUnavailable %s and fencing tokens only grow (seed %i)', (maxUnavailable, seed) => {
    const stats = simulate(maxUnavailable, seed, 8_000);
    // The run must have exercised the rules, not just been refused throughout.
    expect(stats.grants).toBeGreaterThan(100);
    expect(stats.maxActive).toBe(effectiveMaxUnavailable({ ...POLICY, maxUnavailable }, 50));
    expect(stats.expiries).toBeGreaterThan(0);
    expect(stats.halts).toBeGreaterThan(0);
    expect(stats.completions).toBeGreaterThan(0);
    expect(stats.refusals.get('busy')).toBeGreaterThan(0);
    expect(stats.refusals.get('unhealthy-peer')).toBeGreaterThan(0);
  });
});
