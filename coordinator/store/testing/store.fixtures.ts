import {
  newEvent,
  type Change,
  type DrainRecord,
  type GroupRecord,
  type LeaseRecord,
  type NewEvent,
  type NodeRecord,
  type RolloutRecord,
} from '../../state/model.js';

/** Record builders for store tests: valid defaults, overridable per test. */

export const t0 = 1_700_000_000_000;

export function digest(character: string): string {
  return `sha256:${character.repeat(64)}`;
}

export function groupRecord(name: string, version: number, overrides: Partial<GroupRecord> = {}): GroupRecord {
  return { name, paused: false, lastFencingToken: 0, version, ...overrides };
}

export function nodeRecord(group: string, nodeId: string, overrides: Partial<NodeRecord> = {}): NodeRecord {
  return {
    group,
    nodeId,
    host: `${nodeId}.example.test`,
    image: 'registry.test/app:stable',
    currentDigest: digest('a'),
    health: 'healthy',
    step: 'idle',
    agentVersion: '0.1.0',
    lastHeartbeatMs: t0,
    joinedAtMs: t0,
    ...overrides,
  };
}

export function rolloutRecord(
  group: string,
  rolloutId: string,
  overrides: Partial<RolloutRecord> = {},
): RolloutRecord {
  return {
    rolloutId,
    group,
    seq: 1,
    cause: 'push',
    completedAtMs: null,
    rolledBackFrom: null,
    targetDigest: digest('b'),
    image: 'registry.test/app:stable',
    state: 'in-progress',
    openedAtMs: t0,
    endedAtMs: null,
    haltedByNodeId: null,
    haltReason: null,
    ...overrides,
  };
}

export function leaseRecord(group: string, leaseId: string, overrides: Partial<LeaseRecord> = {}): LeaseRecord {
  return {
    leaseId,
    group,
    nodeId: 'node-1',
    rolloutId: 'rollout-1',
    targetDigest: digest('b'),
    fencingToken: 1,
    grantedAtMs: t0,
    expiresAtMs: t0 + 30_000,
    endedAtMs: null,
    endedAs: null,
    ...overrides,
  };
}

export function drainRecord(group: string, drainId: string, overrides: Partial<DrainRecord> = {}): DrainRecord {
  return {
    drainId,
    group,
    nodeId: 'node-2',
    reason: 'kernel upgrade',
    startedAtMs: t0,
    endedAtMs: null,
    endedAs: null,
    ...overrides,
  };
}

export function eventRecord(group: string, overrides: Partial<NewEvent> = {}): NewEvent {
  return newEvent({ atMs: t0, type: 'grant', group, ...overrides });
}

export const putGroup = (group: GroupRecord): Change => ({ kind: 'put-group', group });
export const putNode = (node: NodeRecord): Change => ({ kind: 'put-node', node });
export const heartbeat = (node: NodeRecord): Change => ({ kind: 'heartbeat', node });
export const deleteNode = (group: string, nodeId: string): Change => ({ kind: 'delete-node', group, nodeId });
export const putRollout = (rollout: RolloutRecord): Change => ({ kind: 'put-rollout', rollout });
export const putLease = (lease: LeaseRecord): Change => ({ kind: 'put-lease', lease });
export const appendEvent = (event: NewEvent): Change => ({ kind: 'append-event', event });
export const putDrain = (drain: DrainRecord): Change => ({ kind: 'put-drain', drain });
