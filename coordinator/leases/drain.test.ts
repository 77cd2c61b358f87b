import { describe, expect, it } from 'vitest';
import type { NodeHealth } from '../../shared/api/v1.js';
import { applyChanges } from '../state/apply.js';
import type { Decision, DrainRecord, GroupPolicy, GroupState, LeaseRecord, NodeRecord } from '../state/model.js';
import { decideDrain, decideUndrain, drainInfoOf, type DrainResult } from './drain.js';
import { decideAcquire, decideForget, decideHeartbeat, decideRelease, heldLeases } from './rules.js';
import { GROUP, lease as leaseRecord, NEW, node, OLD, pure, rollout as rolloutRecord, T0 } from './testing/rules.fixtures.js';

// ---- Fixtures (shared with rules.test.ts in rules.fixtures.ts)

const rollout = rolloutRecord('r-new', NEW);
const lease = (nodeId: string, overrides: Partial<LeaseRecord> = {}): LeaseRecord => leaseRecord(`lease-${nodeId}`, nodeId, overrides);

const POLICY: GroupPolicy = { maxUnavailable: 1, leaseTtlMs: 30_000, heartbeatMissLimitMs: 15_000 };
const TWO: GroupPolicy = { ...POLICY, maxUnavailable: 2 };

function drain(nodeId: string, reason: string | null = 'maintenance'): DrainRecord {
  return { drainId: `drain-${nodeId}`, group: GROUP, nodeId, reason, startedAtMs: T0 - 60_000, endedAtMs: null, endedAs: null };
}

interface Fixture {
  nodes?: NodeRecord[];
  leases?: LeaseRecord[];
  drains?: DrainRecord[];
}

/** Nodes a, b and c on OLD, a rollout of NEW open. */
function group(fixture: Fixture = {}): GroupState {
  const leases = fixture.leases ?? [];
  return {
    group: { name: GROUP, paused: false, lastFencingToken: Math.max(0, ...leases.map((l) => l.fencingToken)), version: 5 },
    nodes: new Map((fixture.nodes ?? [node('a'), node('b'), node('c')]).map((n) => [n.nodeId, n])),
    rollouts: [rollout],
    activeLeases: new Map(leases.map((l) => [l.leaseId, l])),
    activeDrains: new Map((fixture.drains ?? []).map((d) => [d.nodeId, d])),
  };
}

function commit<Result>(state: GroupState, decision: Decision<Result>): Result {
  applyChanges(state, decision.changes);
  return decision.result;
}

const drainOf = (state: GroupState, nodeId: string, policy = POLICY, reason = 'kernel upgrade'): Decision<DrainResult> =>
  pure(state, (s) => decideDrain(s, nodeId, reason, policy, T0, `drain-${nodeId}`));

function acquire(state: GroupState, nodeId: string, policy = POLICY) {
  const decision = pure(state, (s) =>
    decideAcquire(s, { nodeId, group: GROUP, targetDigest: NEW }, policy, T0, { leaseId: `lease-${nodeId}`, rolloutId: 'r-x' }),
  );
  if (decision.result.kind !== 'decision') throw new Error(decision.result.message);
  return { decision, answer: decision.result.decision };
}

const eventTypes = (decision: Decision<unknown>): string[] =>
  decision.changes.flatMap((change) => (change.kind === 'append-event' ? [change.event.type] : []));

// ---- Drain

describe('decideDrain', () => {
  it('drains a node when a slot is free: one put-drain and one drain event, no expiry', () => {
    const decision = drainOf(group(), 'a');
    expect(decision.result).toEqual({
      kind: 'drained',
      changed: true,
      drain: { drainId: 'drain-a', group: GROUP, nodeId: 'a', reason: 'kernel upgrade', startedAtMs: T0, endedAtMs: null, endedAs: null },
    });
    expect(decision.changes.map((c) => c.kind)).toEqual(['put-drain', 'append-event']);
    expect(eventTypes(decision)).toEqual(['drain']);
    const event = decision.changes[1];
    expect(event?.kind === 'append-event' && event.event).toMatchObject({ nodeId: 'a', reason: 'kernel upgrade' });
  });

  it('keeps no reason when none is given', () => {
    const decision = pure(group(), (s) => decideDrain(s, 'a', undefined, POLICY, T0, 'd1'));
    expect(decision.result).toMatchObject({ kind: 'drained', drain: { reason: null } });
  });

  interface Case {
    name: string;
    fixture: Fixture;
    policy?: GroupPolicy;
    expected: 'drained' | 'busy' | 'unhealthy-peer' | 'updating' | 'not-found';
    nodeId?: string;
  }
  const unhealthy = (health: NodeHealth): NodeRecord[] => [node('a'), node('b', { health }), node('c')];
  const cases: Case[] = [
    { name: 'a free slot', fixture: {}, expected: 'drained' },
    { name: 'another node updating (maxUnavailable 1)', fixture: { leases: [lease('b')] }, expected: 'busy' },
    { name: 'another node updating (maxUnavailable 2)', fixture: { leases: [lease('b')] }, policy: TWO, expected: 'drained' },
    { name: 'another node drained (maxUnavailable 1)', fixture: { drains: [drain('b')] }, expected: 'busy' },
    { name: 'one updating, one drained (maxUnavailable 2)', fixture: { leases: [lease('b')], drains: [drain('c')] }, policy: TWO, expected: 'busy' },
    { name: 'another node unhealthy', fixture: { nodes: unhealthy('unhealthy') }, policy: TWO, expected: 'unhealthy-peer' },
    { name: 'another node stopped', fixture: { nodes: unhealthy('stopped') }, policy: TWO, expected: 'unhealthy-peer' },
    {
      name: 'another node silent',
      fixture: { nodes: [node('a'), node('b', { lastHeartbeatMs: T0 - 60_000 }), node('c')] },
      policy: TWO,
      expected: 'unhealthy-peer',
    },
    { name: 'this node itself unhealthy', fixture: { nodes: [node('a', { health: 'unhealthy' }), node('b'), node('c')] }, expected: 'drained' },
    { name: 'this node updating', fixture: { leases: [lease('a')] }, policy: TWO, expected: 'updating' },
    { name: 'an expired lease of another node', fixture: { leases: [lease('b', { expiresAtMs: T0 - 1 })] }, expected: 'drained' },
    { name: 'an unknown node', fixture: {}, nodeId: 'zz', expected: 'not-found' },
  ];

  it.each(cases)('$name: $expected', ({ fixture, policy, expected, nodeId }) => {
    const decision = drainOf(group(fixture), nodeId ?? 'a', policy ?? POLICY);
    const { result } = decision;
    if (expected === 'drained') {
      expect(result.kind).toBe('drained');
      return;
    }
    if (expected === 'not-found') {
      expect(result).toEqual({ kind: 'not-found', message: 'no node zz in group web' });
    } else {
      expect(result).toMatchObject({ kind: 'refused', reason: expected });
    }
    // A refusal changes nothing and records nothing.
    expect(decision.changes).toEqual([]);
  });

  it('names who holds the slots in a busy refusal', () => {
    const { result } = drainOf(group({ drains: [drain('b')] }), 'a');
    expect(result).toEqual({
      kind: 'refused',
      reason: 'busy',
      message: 'group web already has 1 of 1 allowed nodes out of service (b (drained: maintenance))',
    });
  });

  it('is idempotent: draining a drained node changes nothing and keeps the first reason', () => {
    const state = group({ drains: [drain('a')] });
    const decision = drainOf(state, 'a', POLICY, 'another reason');
    expect(decision.result).toEqual({ kind: 'drained', drain: drain('a'), changed: false });
    expect(decision.changes).toEqual([]);
  });
});

// ---- The drain holds a slot against rollout leases

describe('a drained node and rollout leases', () => {
  it('gets no rollout lease itself', () => {
    const { answer } = acquire(group({ drains: [drain('a')] }), 'a', TWO);
    expect(answer).toMatchObject({ granted: false, reason: 'drained' });
  });

  it('blocks other grants beyond maxUnavailable: with 1, nobody else updates', () => {
    const state = group({ drains: [drain('a', null)] });
    for (const other of ['b', 'c']) {
      const { answer } = acquire(state, other);
      expect(answer).toMatchObject({
        granted: false,
        reason: 'busy',
        message: 'group web already has 1 of 1 allowed nodes out of service (a (drained))',
      });
    }
  });

  it('with 2, one other node updates at a time, never two', () => {
    const state = group({ drains: [drain('a')] });
    const first = acquire(state, 'b', TWO);
    expect(first.answer.granted).toBe(true);
    commit(state, first.decision);
    expect(acquire(state, 'c', TWO).answer).toMatchObject({ granted: false, reason: 'busy' });
    expect(heldLeases(state, T0).length + state.activeDrains.size).toBe(2);
  });

  it('does not count a drained node as an unhealthy peer (it holds its slot)', () => {
    const state = group({ nodes: [node('a', { health: 'draining' }), node('b'), node('c')], drains: [drain('a')] });
    expect(acquire(state, 'b', TWO).answer.granted).toBe(true);
  });

  it('a drain and a rollout never overlap beyond maxUnavailable, in either order (table)', () => {
    const orders: [string, GroupPolicy, number][] = [
      ['drain first, maxUnavailable 1', POLICY, 1],
      ['drain first, maxUnavailable 2', TWO, 2],
    ];
    for (const [, policy, allowed] of orders) {
      const state = group();
      commit(state, drainOf(state, 'a', policy));
      for (const other of ['b', 'c']) {
        const { decision } = acquire(state, other, policy);
        commit(state, decision);
      }
      expect(heldLeases(state, T0).length + state.activeDrains.size).toBe(allowed);
    }
    // Lease first: the drain waits for a slot.
    const state = group();
    commit(state, acquire(state, 'b').decision);
    expect(drainOf(state, 'a').result).toMatchObject({ kind: 'refused', reason: 'busy' });
    commit(state, pure(state, (s) => decideRelease(s, 'lease-b', { fencingToken: 1, outcome: 'updated' }, T0)));
    expect(drainOf(state, 'a').result).toMatchObject({ kind: 'drained', changed: true });
  });

  it('tells the drained node in every heartbeat answer, and null once undrained', () => {
    const state = group({ drains: [drain('a')] });
    const request = { group: GROUP, host: 'a.example', image: 'x', currentDigest: OLD, health: 'draining' as const, step: 'idle' as const, agentVersion: '1' };
    const beat = pure(state, (s) => decideHeartbeat(s, 'a', request, T0, false, 5_000));
    expect(beat.result.drained).toEqual({ reason: 'maintenance', sinceMs: T0 - 60_000 });
    expect(pure(state, (s) => decideHeartbeat(s, 'b', { ...request, health: 'healthy' }, T0, false, 5_000)).result.drained).toBeNull();
    commit(state, pure(state, (s) => decideUndrain(s, 'a', T0)));
    expect(pure(state, (s) => decideHeartbeat(s, 'a', request, T0, false, 5_000)).result.drained).toBeNull();
  });
});

// ---- Undrain and forget

describe('decideUndrain', () => {
  it('ends the drain, frees the slot and records an undrain event', () => {
    const state = group({ drains: [drain('a')] });
    const decision = pure(state, (s) => decideUndrain(s, 'a', T0));
    const ended = { ...drain('a'), endedAtMs: T0, endedAs: 'undrained' };
    expect(decision.result).toEqual({ kind: 'undrained', ended });
    expect(decision.changes[0]).toEqual({ kind: 'put-drain', drain: ended });
    expect(eventTypes(decision)).toEqual(['undrain']);
    commit(state, decision);
    expect(state.activeDrains.size).toBe(0);
    expect(acquire(state, 'b').answer.granted).toBe(true);
  });

  it('is idempotent: undraining a node that is not drained changes nothing', () => {
    const decision = pure(group(), (s) => decideUndrain(s, 'a', T0));
    expect(decision).toEqual({ result: { kind: 'undrained', ended: undefined }, changes: [] });
  });

  it('refuses an unknown node', () => {
    expect(pure(group(), (s) => decideUndrain(s, 'zz', T0)).result.kind).toBe('not-found');
  });
});

describe('forget ends a drain', () => {
  it('ends it as forgotten, with an undrain event, and frees the slot', () => {
    const state = group({ drains: [drain('a')] });
    const decision = pure(state, (s) => decideForget(s, 'a', T0));
    expect(decision.changes).toContainEqual({ kind: 'put-drain', drain: { ...drain('a'), endedAtMs: T0, endedAs: 'forgotten' } });
    expect(eventTypes(decision)).toEqual(['undrain', 'node-forgotten']);
    commit(state, decision);
    expect(state.activeDrains.size).toBe(0);
    expect(acquire(state, 'b').answer.granted).toBe(true);
  });
});

describe('drainInfoOf', () => {
  it('tells reason and start, or null', () => {
    expect(drainInfoOf(drain('a'))).toEqual({ reason: 'maintenance', sinceMs: T0 - 60_000 });
    expect(drainInfoOf(undefined)).toBeNull();
  });
});
