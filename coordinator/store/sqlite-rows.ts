import type { BatonEvent, EventType, NodeHealth, RolloutCause, RolloutState, UpdateStep } from '../../shared/api/v1.js';
import type {
  DrainEnd,
  DrainRecord,
  GroupRecord,
  LeaseEnd,
  LeaseRecord,
  NewEvent,
  NodeRecord,
  RolloutRecord,
} from '../state/model.js';

/** Rows as SQLite returns them, and the named parameters the statements bind. */

export interface GroupRow {
  name: string;
  paused: number;
  last_fencing_token: number;
  version: number;
}

export interface NodeRow {
  group_name: string;
  node_id: string;
  host: string;
  image: string;
  current_digest: string | null;
  health: string;
  step: string;
  agent_version: string;
  last_heartbeat_ms: number;
  joined_at_ms: number;
}

export interface RolloutRow {
  rollout_id: string;
  group_name: string;
  seq: number;
  cause: string;
  target_digest: string;
  image: string | null;
  state: string;
  opened_at_ms: number;
  ended_at_ms: number | null;
  completed_at_ms: number | null;
  rolled_back_from: string | null;
  halted_by_node_id: string | null;
  halt_reason: string | null;
}

export interface LeaseRow {
  lease_id: string;
  group_name: string;
  node_id: string;
  rollout_id: string;
  target_digest: string;
  fencing_token: number;
  granted_at_ms: number;
  expires_at_ms: number;
  ended_at_ms: number | null;
  ended_as: string | null;
}

export interface DrainRow {
  drain_id: string;
  group_name: string;
  node_id: string;
  reason: string | null;
  started_at_ms: number;
  ended_at_ms: number | null;
  ended_as: string | null;
}

export interface EventRow {
  seq: number;
  at_ms: number;
  type: string;
  group_name: string;
  node_id: string | null;
  digest: string | null;
  lease_id: string | null;
  fencing_token: number | null;
  reason: string | null;
  outcome: string | null;
  message: string | null;
}

export type NewEventRow = Omit<EventRow, 'seq'>;

// The CHECK constraints keep the enum columns within their unions, so these casts hold.

export function groupFromRow(row: GroupRow): GroupRecord {
  return {
    name: row.name,
    paused: row.paused === 1,
    lastFencingToken: row.last_fencing_token,
    version: row.version,
  };
}

export function groupToRow(group: GroupRecord): GroupRow {
  return {
    name: group.name,
    paused: group.paused ? 1 : 0,
    last_fencing_token: group.lastFencingToken,
    version: group.version,
  };
}

export function nodeFromRow(row: NodeRow): NodeRecord {
  return {
    group: row.group_name,
    nodeId: row.node_id,
    host: row.host,
    image: row.image,
    currentDigest: row.current_digest,
    health: row.health as NodeHealth,
    step: row.step as UpdateStep,
    agentVersion: row.agent_version,
    lastHeartbeatMs: row.last_heartbeat_ms,
    joinedAtMs: row.joined_at_ms,
  };
}

export function nodeToRow(node: NodeRecord): NodeRow {
  return {
    group_name: node.group,
    node_id: node.nodeId,
    host: node.host,
    image: node.image,
    current_digest: node.currentDigest,
    health: node.health,
    step: node.step,
    agent_version: node.agentVersion,
    last_heartbeat_ms: node.lastHeartbeatMs,
    joined_at_ms: node.joinedAtMs,
  };
}

/** The columns a heartbeat may change; joined_at_ms is not one of them. */
export type HeartbeatRow = Omit<NodeRow, 'joined_at_ms'>;

export function heartbeatToRow(node: NodeRecord): HeartbeatRow {
  const { joined_at_ms: _joined, ...soft } = nodeToRow(node);
  return soft;
}

export function rolloutFromRow(row: RolloutRow): RolloutRecord {
  return {
    rolloutId: row.rollout_id,
    group: row.group_name,
    seq: row.seq,
    cause: row.cause as RolloutCause,
    targetDigest: row.target_digest,
    image: row.image,
    state: row.state as RolloutState,
    openedAtMs: row.opened_at_ms,
    endedAtMs: row.ended_at_ms,
    completedAtMs: row.completed_at_ms,
    rolledBackFrom: row.rolled_back_from,
    haltedByNodeId: row.halted_by_node_id,
    haltReason: row.halt_reason,
  };
}

export function rolloutToRow(rollout: RolloutRecord): RolloutRow {
  return {
    rollout_id: rollout.rolloutId,
    group_name: rollout.group,
    seq: rollout.seq,
    cause: rollout.cause,
    target_digest: rollout.targetDigest,
    image: rollout.image,
    state: rollout.state,
    opened_at_ms: rollout.openedAtMs,
    ended_at_ms: rollout.endedAtMs,
    completed_at_ms: rollout.completedAtMs,
    rolled_back_from: rollout.rolledBackFrom,
    halted_by_node_id: rollout.haltedByNodeId,
    halt_reason: rollout.haltReason,
  };
}

export function leaseFromRow(row: LeaseRow): LeaseRecord {
  return {
    leaseId: row.lease_id,
    group: row.group_name,
    nodeId: row.node_id,
    rolloutId: row.rollout_id,
    targetDigest: row.target_digest,
    fencingToken: row.fencing_token,
    grantedAtMs: row.granted_at_ms,
    expiresAtMs: row.expires_at_ms,
    endedAtMs: row.ended_at_ms,
    endedAs: row.ended_as as LeaseEnd | null,
  };
}

export function leaseToRow(lease: LeaseRecord): LeaseRow {
  return {
    lease_id: lease.leaseId,
    group_name: lease.group,
    node_id: lease.nodeId,
    rollout_id: lease.rolloutId,
    target_digest: lease.targetDigest,
    fencing_token: lease.fencingToken,
    granted_at_ms: lease.grantedAtMs,
    expires_at_ms: lease.expiresAtMs,
    ended_at_ms: lease.endedAtMs,
    ended_as: lease.endedAs,
  };
}

export function drainFromRow(row: DrainRow): DrainRecord {
  return {
    drainId: row.drain_id,
    group: row.group_name,
    nodeId: row.node_id,
    reason: row.reason,
    startedAtMs: row.started_at_ms,
    endedAtMs: row.ended_at_ms,
    endedAs: row.ended_as as DrainEnd | null,
  };
}

export function drainToRow(drain: DrainRecord): DrainRow {
  return {
    drain_id: drain.drainId,
    group_name: drain.group,
    node_id: drain.nodeId,
    reason: drain.reason,
    started_at_ms: drain.startedAtMs,
    ended_at_ms: drain.endedAtMs,
    ended_as: drain.endedAs,
  };
}

export function eventFromRow(row: EventRow): BatonEvent {
  return {
    seq: row.seq,
    atMs: row.at_ms,
    type: row.type as EventType,
    group: row.group_name,
    nodeId: row.node_id,
    digest: row.digest,
    leaseId: row.lease_id,
    fencingToken: row.fencing_token,
    reason: row.reason,
    outcome: row.outcome,
    message: row.message,
  };
}

export function eventToRow(event: NewEvent): NewEventRow {
  return {
    at_ms: event.atMs,
    type: event.type,
    group_name: event.group,
    node_id: event.nodeId,
    digest: event.digest,
    lease_id: event.leaseId,
    fencing_token: event.fencingToken,
    reason: event.reason,
    outcome: event.outcome,
    message: event.message,
  };
}
