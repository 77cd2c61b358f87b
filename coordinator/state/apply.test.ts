import { describe, expect, it } from 'vitest';
import { applyChanges, emptyGroupState } from './apply.js';
import { newEvent, type GroupState, type LeaseRecord, type NodeRecord, type RolloutRecord } from './model.js';

const DIGEST_1 = `sha256:${'1'.repeat(64)}`;
const DIGEST_2 = `sha256:${'2'.repeat(64)}`;

function node(nodeId: string, overrides: Partial<NodeRecord> = {}): NodeRecord {
  return {
    group: 'web',
    nodeId,
    host: `${nodeId}.example`,
    image: 'registry.example/web:stable',
    currentDigest: DIGEST_1,
    health: 'healthy',
    step: 'idle',
    agentVersion: '0.1.0',
    lastHeartbeatMs: 1_000,
    joinedAtMs: 500,
    ...overrides,
  };
}

function rollout(rolloutId: string, overrides: Partial<RolloutRecord> = {}): RolloutRecord {
  return {
    rolloutId,
    group: 'web',
    seq: 1,
    cause: 'push',
    completedAtMs: null,
    rolledBackFrom: null,
    targetDigest: DIGEST_2,
    image: null,
    state: 'in-progress',
    openedAtMs: 1_000,
    endedAtMs: null,
    haltedByNodeId: null,
    haltReason: null,
    ...overrides,
  };
}

function lease(leaseId: string, overrides: Partial<LeaseRecord> = {}): LeaseRecord {
  return {
    leaseId,
    group: 'web',
    nodeId: 'a',
    rolloutId: 'r1',
    targetDigest: DIGEST_2,
    fencingToken: 1,
    grantedAtMs: 1_000,
    expiresAtMs: 31_000,
    endedAtMs: null,
    endedAs: null,
    ...overrides,
  };
}

function stateWithNodes(...ids: string[]): GroupState {
  const state = emptyGroupState('web');
  for (const id of ids) state.nodes.set(id, node(id));
  return state;
}

describe('emptyGroupState', () => {
  it('is a group at version 0 with nothing in it', () => {
    expect(emptyGroupState('web')).toEqual({
      group: { name: 'web', paused: false, lastFencingToken: 0, version: 0 },
      nodes: new Map(),
      rollouts: [],
      activeLeases: new Map(),
      activeDrains: new Map(),
    });
  });

  it('returns a fresh state every time', () => {
    const first = emptyGroupState('web');
    first.nodes.set('a', node('a'));
    expect(emptyGroupState('web').nodes.size).toBe(0);
  });
});

describe('applyChanges', () => {
  it('replaces the group record', () => {
    const state = emptyGroupState('web');
    const group = { name: 'web', paused: true, lastFencingToken: 7, version: 3 };
    applyChanges(state, [{ kind: 'put-group', group }]);
    expect(state.group).toEqual(group);
  });

  it('adds a node with put-node and replaces it with put-node or heartbeat', () => {
    const state = emptyGroupState('web');
    applyChanges(state, [{ kind: 'put-node', node: node('a') }]);
    expect(state.nodes.get('a')).toEqual(node('a'));
    applyChanges(state, [{ kind: 'put-node', node: node('a', { health: 'starting' }) }]);
    expect(state.nodes.get('a')?.health).toBe('starting');
    applyChanges(state, [{ kind: 'heartbeat', node: node('a', { lastHeartbeatMs: 9_000 }) }]);
    expect(state.nodes.get('a')).toEqual(node('a', { lastHeartbeatMs: 9_000 }));
  });

  it('sets a node from a heartbeat, like the store that upserts it', () => {
    const state = emptyGroupState('web');
    applyChanges(state, [{ kind: 'heartbeat', node: node('a') }]);
    expect([...state.nodes.keys()]).toEqual(['a']);
  });

  it('removes a node with delete-node, and ignores one it does not have', () => {
    const state = stateWithNodes('a', 'b');
    applyChanges(state, [
      { kind: 'delete-node', group: 'web', nodeId: 'a' },
      { kind: 'delete-node', group: 'web', nodeId: 'zz' },
    ]);
    expect([...state.nodes.keys()]).toEqual(['b']);
  });

  it('appends a new rollout and replaces a known one in place, keeping the order', () => {
    const state = emptyGroupState('web');
    applyChanges(state, [
      { kind: 'put-rollout', rollout: rollout('r1') },
      { kind: 'put-rollout', rollout: rollout('r2', { targetDigest: DIGEST_1 }) },
      { kind: 'put-rollout', rollout: rollout('r1', { state: 'superseded', endedAtMs: 2_000 }) },
    ]);
    expect(state.rollouts).toEqual([
      rollout('r1', { state: 'superseded', endedAtMs: 2_000 }),
      rollout('r2', { targetDigest: DIGEST_1 }),
    ]);
  });

  it('keeps a lease that has not ended and removes one that has', () => {
    const state = emptyGroupState('web');
    applyChanges(state, [
      { kind: 'put-lease', lease: lease('l1') },
      { kind: 'put-lease', lease: lease('l2', { nodeId: 'b', fencingToken: 2 }) },
    ]);
    expect([...state.activeLeases.keys()]).toEqual(['l1', 'l2']);
    applyChanges(state, [{ kind: 'put-lease', lease: lease('l1', { expiresAtMs: 50_000 }) }]);
    expect(state.activeLeases.get('l1')?.expiresAtMs).toBe(50_000);
    applyChanges(state, [{ kind: 'put-lease', lease: lease('l1', { endedAtMs: 3_000, endedAs: 'updated' }) }]);
    expect([...state.activeLeases.keys()]).toEqual(['l2']);
  });

  it('ending a lease it never had leaves the active leases alone', () => {
    const state = emptyGroupState('web');
    applyChanges(state, [{ kind: 'put-lease', lease: lease('l9', { endedAtMs: 3_000, endedAs: 'expired' }) }]);
    expect(state.activeLeases.size).toBe(0);
  });

  it('changes nothing for an event', () => {
    const state = stateWithNodes('a');
    const before = structuredClone(state);
    applyChanges(state, [
      { kind: 'append-event', event: newEvent({ type: 'pause', group: 'web', atMs: 1 }) },
    ]);
    expect(state).toEqual(before);
  });

  it('applies changes in order', () => {
    const state = emptyGroupState('web');
    applyChanges(state, [
      { kind: 'put-node', node: node('a') },
      { kind: 'delete-node', group: 'web', nodeId: 'a' },
      { kind: 'put-node', node: node('a', { host: 'again.example' }) },
    ]);
    expect(state.nodes.get('a')?.host).toBe('again.example');
  });

  it('does not edit the records it replaces, so shallow copies of a state stay intact', () => {
    const state = stateWithNodes('a');
    state.rollouts.push(rollout('r1'));
    state.activeLeases.set('l1', lease('l1'));
    const oldNode = state.nodes.get('a');
    const oldRollout = state.rollouts[0];
    const oldLease = state.activeLeases.get('l1');
    const snapshot = structuredClone({ oldNode, oldRollout, oldLease });
    applyChanges(state, [
      { kind: 'heartbeat', node: node('a', { health: 'unhealthy' }) },
      { kind: 'put-rollout', rollout: rollout('r1', { state: 'halted' }) },
      { kind: 'put-lease', lease: lease('l1', { expiresAtMs: 99_000 }) },
    ]);
    expect({ oldNode, oldRollout, oldLease }).toEqual(snapshot);
  });
});
