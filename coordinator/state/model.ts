import type {
  BatonEvent,
  MaxUnavailable,
  NodeHealth,
  RolloutState,
  UpdateStep,
} from '../../shared/api/v1.js';

/**
 * The coordinator's state for one group. Rules read it and return Changes; the service
 * applies Changes to its cached copy (applyChanges) and to the Store, in that one order.
 */
export interface GroupPolicy {
  maxUnavailable: MaxUnavailable;
  leaseTtlMs: number;
  heartbeatMissLimitMs: number;
}

export interface GroupRecord {
  name: string;
  paused: boolean;
  /** The last fencing token issued in this group; the next grant gets this + 1. */
  lastFencingToken: number;
  /** Bumped by every durable change batch; lets a shared backend detect a concurrent writer. */
  version: number;
}

export interface NodeRecord {
  group: string;
  nodeId: string;
  host: string;
  image: string;
  currentDigest: string | null;
  health: NodeHealth;
  step: UpdateStep;
  agentVersion: string;
  lastHeartbeatMs: number;
  joinedAtMs: number;
}

export interface RolloutRecord {
  rolloutId: string;
  group: string;
  targetDigest: string;
  image: string | null;
  state: RolloutState;
  openedAtMs: number;
  endedAtMs: number | null;
  haltedByNodeId: string | null;
  haltReason: string | null;
}

export type LeaseEnd = 'updated' | 'failed' | 'abandoned' | 'expired' | 'forgotten';

export interface LeaseRecord {
  leaseId: string;
  group: string;
  nodeId: string;
  rolloutId: string;
  targetDigest: string;
  fencingToken: number;
  grantedAtMs: number;
  expiresAtMs: number;
  endedAtMs: number | null;
  endedAs: LeaseEnd | null;
}

export interface GroupState {
  group: GroupRecord;
  /** Keyed by node id. */
  nodes: Map<string, NodeRecord>;
  /** Every rollout the group has had, oldest first: a halted digest must never be granted again. */
  rollouts: RolloutRecord[];
  /** Leases not yet ended (released, expired or forgotten), keyed by lease id. */
  activeLeases: Map<string, LeaseRecord>;
}

export type NewEvent = Omit<BatonEvent, 'seq'>;

/**
 * One effect of a decision. All but `heartbeat` are durable: the store commits them in one
 * transaction before the request is answered. `heartbeat` is soft state, written in batches.
 */
export type Change =
  | { kind: 'put-group'; group: GroupRecord }
  | { kind: 'put-node'; node: NodeRecord }
  | { kind: 'heartbeat'; node: NodeRecord }
  | { kind: 'delete-node'; group: string; nodeId: string }
  | { kind: 'put-rollout'; rollout: RolloutRecord }
  | { kind: 'put-lease'; lease: LeaseRecord }
  | { kind: 'append-event'; event: NewEvent };

/** What a rule returns: the answer for the caller and the changes that make it true. */
export interface Decision<Result> {
  result: Result;
  changes: Change[];
}
