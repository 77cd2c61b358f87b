import type {
  BatonEvent,
  MaxUnavailable,
  NodeHealth,
  RolloutCause,
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

/**
 * One rollout: one push (or operator command) of a digest to a group. A digest may have many
 * rollouts over time (v1, v2, v1 again); `seq` orders them within the group.
 */
export interface RolloutRecord {
  rolloutId: string;
  group: string;
  /** 1, 2, 3... per group: the newest rollout is the group's current one. */
  seq: number;
  /** What opened it: a push seen by an agent, `baton rollback`, or `baton retry`. */
  cause: RolloutCause;
  targetDigest: string;
  image: string | null;
  state: RolloutState;
  openedAtMs: number;
  endedAtMs: number | null;
  /** When every node first ran the target; kept when a newer rollout supersedes this one. */
  completedAtMs: number | null;
  /**
   * A rollback's: the digest the tag still points at. Agents run the target instead while the
   * tag shows this digest; it is rolled out again only by `baton retry` or a push of another digest.
   */
  rolledBackFrom: string | null;
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

export type DrainEnd = 'undrained' | 'forgotten';

/**
 * An operator's drain of one node in one group (`baton drain`): lease-like, it holds one of the
 * group's maxUnavailable slots on the node's behalf, but it has no TTL. It lasts until `baton
 * undrain` or until the node is forgotten.
 */
export interface DrainRecord {
  drainId: string;
  group: string;
  nodeId: string;
  /** What the operator said (`--reason`); null when nothing was said. */
  reason: string | null;
  startedAtMs: number;
  endedAtMs: number | null;
  endedAs: DrainEnd | null;
}

export interface GroupState {
  group: GroupRecord;
  /** Keyed by node id. */
  nodes: Map<string, NodeRecord>;
  /** Every rollout the group has had, by seq (oldest first); the last one is the current one. */
  rollouts: RolloutRecord[];
  /** Leases not yet ended (released, expired or forgotten), keyed by lease id. */
  activeLeases: Map<string, LeaseRecord>;
  /** Drains not yet ended, keyed by node id (a node has at most one). */
  activeDrains: Map<string, DrainRecord>;
}

export type NewEvent = Omit<BatonEvent, 'seq'>;
/** The fields an event of some type may carry besides its type, group and time. */
export type EventDetails = Partial<Omit<NewEvent, 'type' | 'group' | 'atMs'>>;

/** An event with every field its details do not name set to null. */
export function newEvent(fields: Pick<NewEvent, 'type' | 'group' | 'atMs'> & EventDetails): NewEvent {
  const { type, group, atMs, ...details } = fields;
  return {
    type,
    group,
    atMs,
    nodeId: null,
    digest: null,
    leaseId: null,
    fencingToken: null,
    reason: null,
    outcome: null,
    message: null,
    ...details,
  };
}

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
  | { kind: 'put-drain'; drain: DrainRecord }
  | { kind: 'append-event'; event: NewEvent };

/** What a rule returns: the answer for the caller and the changes that make it true. */
export interface Decision<Result> {
  result: Result;
  changes: Change[];
}
