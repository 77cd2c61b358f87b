import type { Change, DrainRecord, GroupState, LeaseRecord, RolloutRecord } from './model.js';

/** The state of a group the store has never written. */
export function emptyGroupState(name: string): GroupState {
  return {
    group: { name, paused: false, lastFencingToken: 0, version: 0 },
    nodes: new Map(),
    rollouts: [],
    activeLeases: new Map(),
    activeDrains: new Map(),
  };
}

/**
 * Makes a cached GroupState equal to what the store holds once `changes` are committed.
 * Records are replaced, never edited in place, so a shallow copy of a state's collections
 * is enough to keep the original intact.
 */
export function applyChanges(state: GroupState, changes: readonly Change[]): void {
  for (const change of changes) applyChange(state, change);
}

export function applyChange(state: GroupState, change: Change): void {
  switch (change.kind) {
    case 'put-group':
      state.group = change.group;
      return;
    case 'put-node':
    case 'heartbeat':
      state.nodes.set(change.node.nodeId, change.node);
      return;
    case 'delete-node':
      state.nodes.delete(change.nodeId);
      return;
    case 'put-rollout':
      putRollout(state, change.rollout);
      return;
    case 'put-lease':
      putLease(state, change.lease);
      return;
    case 'put-drain':
      putDrain(state, change.drain);
      return;
    case 'append-event':
      return;
  }
}

function putRollout(state: GroupState, rollout: RolloutRecord): void {
  const index = state.rollouts.findIndex((r) => r.rolloutId === rollout.rolloutId);
  if (index === -1) state.rollouts.push(rollout);
  else state.rollouts[index] = rollout;
}

function putLease(state: GroupState, lease: LeaseRecord): void {
  if (lease.endedAtMs === null) state.activeLeases.set(lease.leaseId, lease);
  else state.activeLeases.delete(lease.leaseId);
}

function putDrain(state: GroupState, drain: DrainRecord): void {
  if (drain.endedAtMs === null) state.activeDrains.set(drain.nodeId, drain);
  else if (state.activeDrains.get(drain.nodeId)?.drainId === drain.drainId) state.activeDrains.delete(drain.nodeId);
}
