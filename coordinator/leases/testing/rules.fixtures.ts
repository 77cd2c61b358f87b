import { expect } from 'vitest';
import type { Decision, GroupState, LeaseRecord, NodeRecord, RolloutRecord } from '../../state/model.js';

/** Records and helpers shared by the rules' tests (test code: not built into dist). */

export const GROUP = 'web';
export const T0 = 1_700_000_000_000;

export const digest = (n: number): string => `sha256:${n.toString(16).padStart(64, '0')}`;
export const OLD = digest(1);
export const NEW = digest(2);
export const NEWER = digest(3);

export function node(nodeId: string, overrides: Partial<NodeRecord> = {}): NodeRecord {
  return {
    group: GROUP,
    nodeId,
    host: `${nodeId}.example`,
    image: 'registry.example/web:stable',
    currentDigest: OLD,
    health: 'healthy',
    step: 'idle',
    agentVersion: '0.1.0',
    lastHeartbeatMs: T0,
    joinedAtMs: T0 - 60_000,
    ...overrides,
  };
}

export function rollout(rolloutId: string, targetDigest: string, overrides: Partial<RolloutRecord> = {}): RolloutRecord {
  return {
    rolloutId,
    group: GROUP,
    seq: 1,
    cause: 'push',
    completedAtMs: null,
    rolledBackFrom: null,
    targetDigest,
    image: null,
    state: 'in-progress',
    openedAtMs: T0 - 10_000,
    endedAtMs: null,
    haltedByNodeId: null,
    haltReason: null,
    ...overrides,
  };
}

export function lease(leaseId: string, nodeId: string, overrides: Partial<LeaseRecord> = {}): LeaseRecord {
  return {
    leaseId,
    group: GROUP,
    nodeId,
    rolloutId: 'r-new',
    targetDigest: NEW,
    fencingToken: 1,
    grantedAtMs: T0 - 5_000,
    expiresAtMs: T0 + 25_000,
    endedAtMs: null,
    endedAs: null,
    ...overrides,
  };
}

/** Runs a rule and checks that it left its input exactly as it was. */
export function pure<Result>(state: GroupState, rule: (state: GroupState) => Decision<Result>): Decision<Result> {
  const before = structuredClone(state);
  const decision = rule(state);
  expect(state).toEqual(before);
  return decision;
}
