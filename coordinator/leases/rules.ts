import type { z } from 'zod';
import type {
  heartbeatRequestSchema,
  HeartbeatResponse,
  LeaseDecision,
  LeaseGrant,
  LeaseRequest,
  RefusalReason,
} from '../../shared/api/v1.js';
import type {
  Decision,
  GroupPolicy,
  GroupState,
  LeaseRecord,
  NodeRecord,
  RolloutRecord,
} from '../state/model.js';
import { capacityBlocker, heldLeases, isHeld, isSilent } from './capacity.js';
import { drainInfoOf, endDrainOfNode } from './drain.js';
import { Draft } from './draft.js';
import { endLease, type NotFound } from './lease-end.js';
import {
  completeIfDone,
  currentRollout,
  isOpenOrCompleted,
  refusalOfEndedRollout,
  rolloutById,
  rolloutForRequest,
  type Refusal,
} from './rollouts.js';
import { effectiveMaxUnavailable } from './policy.js';

export { heldLeases, isHeld, isSilent } from './capacity.js';
export { decideRelease, decideRenew, expireLeases, type LeaseEnded, type NotFound, type ReleaseResult, type RenewResult, type StaleToken } from './lease-end.js';
export { decideGroupAction, type Conflict, type GroupAction, type GroupActionResult } from './operator.js';
export { currentRollout, isNewPush, progressOf, tagDigestOf, type RolloutProgress } from './rollouts.js';

/**
 * The coordinator's lease rules: acquire, heartbeat and forget here; renew, release and expiry in
 * lease-end.ts. Pure functions of a group's state. Each returns the answer and the Changes that make it true; none
 * touches its input, reads the clock or makes up ids. Rollout identity is in rollouts.ts,
 * operator actions in operator.ts, drains in drain.ts; this module is the one the service calls.
 */

export type ParsedHeartbeatRequest = z.output<typeof heartbeatRequestSchema>;

export type AcquireResult = NotFound | { kind: 'decision'; decision: LeaseDecision };
export type ForgetResult = NotFound | { kind: 'forgotten'; endedLeases: LeaseRecord[] };

const PAUSED_RETRY_MS = 10_000;
const FINAL_REFUSAL_RETRY_MS = 60_000;

// ---- Reading the state

function heldLeaseOfNode(state: GroupState, nodeId: string, nowMs: number): LeaseRecord | undefined {
  for (const lease of state.activeLeases.values()) if (lease.nodeId === nodeId && isHeld(lease, nowMs)) return lease;
  return undefined;
}

// Oldest first; more than one only if an expired lease was not recorded before a new grant.
function activeLeasesOfNode(state: GroupState, nodeId: string): LeaseRecord[] {
  return [...state.activeLeases.values()]
    .filter((lease) => lease.nodeId === nodeId)
    .sort((a, b) => a.fencingToken - b.fencingToken);
}


// ---- Acquire

export function decideAcquire(
  state: GroupState,
  request: LeaseRequest,
  policy: GroupPolicy,
  nowMs: number,
  ids: { leaseId: string; rolloutId: string },
): Decision<AcquireResult> {
  const draft = new Draft(state, nowMs);
  if (!state.nodes.has(request.nodeId)) {
    return draft.decide({
      kind: 'not-found',
      message:
        `node ${request.nodeId} is not known in group ${request.group}: ` +
        'it must send a heartbeat before asking for a lease',
    });
  }
  const held = heldLeaseOfNode(state, request.nodeId, nowMs);
  if (held !== undefined) {
    if (held.targetDigest === request.targetDigest) {
      return draft.decide(decided(grantOf(held, policy, rolloutById(state, held.rolloutId).seq)));
    }
    const message = `node ${request.nodeId} already holds lease ${held.leaseId} for ${held.targetDigest}; release it first`;
    return refuse(draft, request, policy, 'busy', message);
  }
  if (state.activeDrains.has(request.nodeId)) {
    const message = `node ${request.nodeId} is drained by an operator in group ${request.group}; it updates once undrained`;
    return refuse(draft, request, policy, 'drained', message);
  }
  const rollout = rolloutForRequest(draft, request, ids.rolloutId);
  if ('reason' in rollout) return refuse(draft, request, policy, rollout.reason, rollout.message);
  const finalRefusal = refusalOfEndedRollout(draft.state, rollout);
  if (finalRefusal !== undefined) return refuse(draft, request, policy, finalRefusal.reason, finalRefusal.message);
  // Opening a rollout changes no node, lease or pause, so the original state answers the rest.
  const blocker = grantBlocker(state, request, rollout, policy, nowMs);
  if (blocker !== undefined) {
    const nextInLine = isNextInLine(state, request.nodeId, policy, nowMs);
    return refuse(draft, request, policy, blocker.reason, blocker.message, nextInLine);
  }
  return grant(draft, request, rollout, policy, ids.leaseId);
}

function decided(decision: LeaseDecision): AcquireResult {
  return { kind: 'decision', decision };
}

function grantOf(lease: LeaseRecord, policy: GroupPolicy, rolloutSeq: number): LeaseGrant {
  return {
    granted: true,
    leaseId: lease.leaseId,
    fencingToken: lease.fencingToken,
    group: lease.group,
    nodeId: lease.nodeId,
    targetDigest: lease.targetDigest,
    rolloutId: lease.rolloutId,
    rolloutSeq,
    ttlMs: policy.leaseTtlMs,
    expiresAtMs: lease.expiresAtMs,
  };
}


/** Why a lease cannot be granted now although the rollout is open, if it cannot. */
function grantBlocker(
  state: GroupState,
  request: LeaseRequest,
  rollout: RolloutRecord,
  policy: GroupPolicy,
  nowMs: number,
): Refusal | undefined {
  const group = state.group.name;
  if (state.group.paused || rollout.state === 'paused') {
    return { reason: 'paused', message: `group ${group} is paused; no update starts until it is resumed` };
  }
  return capacityBlocker(state, request.nodeId, policy, nowMs);
}

/** A refused node first in line asks again this soon, so a slot freed by a release is taken within about this long. */
export const NEXT_IN_LINE_RETRY_MS = 500;

export function retryAfterMs(reason: RefusalReason, policy: GroupPolicy, nextInLine = false): number {
  switch (reason) {
    case 'busy':
    case 'unhealthy-peer':
      if (nextInLine) return NEXT_IN_LINE_RETRY_MS;
      // A lease usually ends or is renewed within a fraction of its TTL; ask again about then.
      return Math.round(Math.min(5_000, Math.max(1_000, policy.leaseTtlMs / 6)));
    case 'paused':
    case 'drained':
      return PAUSED_RETRY_MS;
    case 'halted':
    case 'aborted':
    case 'superseded':
    case 'rolled-back':
      return FINAL_REFUSAL_RETRY_MS;
    case 'stale':
      return 0;
  }
}

function refuse(
  draft: Draft,
  request: LeaseRequest,
  policy: GroupPolicy,
  reason: RefusalReason,
  message: string,
  nextInLine = false,
): Decision<AcquireResult> {
  draft.event('refusal', { nodeId: request.nodeId, digest: request.targetDigest, reason, message });
  const rolloutSeq = currentRollout(draft.state)?.seq ?? 0;
  return draft.decide(
    decided({ granted: false, reason, retryAfterMs: retryAfterMs(reason, policy, nextInLine), message, rolloutSeq }),
  );
}

/**
 * Whether the refused node is among the first `maxUnavailable` of the group's waiting nodes (the
 * requester and every node whose last heartbeat says it waits for a lease), by node id. Only those
 * ask again quickly: a freed slot is taken at once, and the load on the coordinator stays flat
 * however many nodes wait.
 */
function isNextInLine(state: GroupState, requesterId: string, policy: GroupPolicy, nowMs: number): boolean {
  const holders = new Set(heldLeases(state, nowMs).map((lease) => lease.nodeId));
  let ahead = 0;
  for (const node of state.nodes.values()) {
    const waiting = node.step === 'lease' && !holders.has(node.nodeId) && !isSilent(node, policy, nowMs);
    if (waiting && node.nodeId < requesterId) ahead += 1;
  }
  return ahead < effectiveMaxUnavailable(policy, state.nodes.size);
}

function grant(
  draft: Draft,
  request: LeaseRequest,
  rollout: RolloutRecord,
  policy: GroupPolicy,
  leaseId: string,
): Decision<AcquireResult> {
  const fencingToken = draft.state.group.lastFencingToken + 1;
  draft.record({ kind: 'put-group', group: { ...draft.state.group, lastFencingToken: fencingToken } });
  const lease: LeaseRecord = {
    leaseId,
    group: draft.state.group.name,
    nodeId: request.nodeId,
    rolloutId: rollout.rolloutId,
    targetDigest: request.targetDigest,
    fencingToken,
    grantedAtMs: draft.nowMs,
    expiresAtMs: draft.nowMs + policy.leaseTtlMs,
    endedAtMs: null,
    endedAs: null,
  };
  draft.record({ kind: 'put-lease', lease });
  draft.event('grant', { nodeId: request.nodeId, digest: request.targetDigest, leaseId, fencingToken });
  return draft.decide(decided(grantOf(lease, policy, rollout.seq)));
}

// ---- Heartbeat

export function decideHeartbeat(
  state: GroupState,
  nodeId: string,
  request: ParsedHeartbeatRequest,
  nowMs: number,
  pendingPoll: boolean,
  heartbeatIntervalMs: number,
): Decision<HeartbeatResponse> {
  const draft = new Draft(state, nowMs);
  const known = state.nodes.get(nodeId);
  if (state.group.version === 0 && state.nodes.size === 0) draft.record({ kind: 'put-group', group: state.group });
  const node: NodeRecord = {
    group: request.group,
    nodeId,
    host: request.host,
    image: request.image,
    currentDigest: request.currentDigest,
    health: request.health,
    step: request.step,
    agentVersion: request.agentVersion,
    lastHeartbeatMs: nowMs,
    joinedAtMs: known?.joinedAtMs ?? nowMs,
  };
  if (known === undefined) {
    draft.record({ kind: 'put-node', node });
    draft.event('node-joined', {
      nodeId,
      digest: node.currentDigest,
      message: `node ${nodeId} on ${node.host} joined group ${node.group}`,
    });
  } else {
    draft.record({ kind: 'heartbeat', node });
  }
  completeIfDone(draft);
  const rollout = currentRollout(draft.state);
  return draft.decide({
    pollNow: pendingPoll,
    paused: draft.state.group.paused,
    heartbeatIntervalMs,
    targetDigest: rollout !== undefined && isOpenOrCompleted(rollout.state) ? rollout.targetDigest : null,
    rolloutState: rollout?.state ?? null,
    rolloutSeq: rollout?.seq ?? 0,
    rolledBackFrom: rollout !== undefined && isOpenOrCompleted(rollout.state) ? rollout.rolledBackFrom : null,
    drained: drainInfoOf(draft.state.activeDrains.get(nodeId)),
  });
}

// ---- Operator actions

/** Removes a node for good (a decommissioned host): it no longer counts, nor blocks grants as silent; its drain ends. */
export function decideForget(state: GroupState, nodeId: string, nowMs: number): Decision<ForgetResult> {
  const draft = new Draft(state, nowMs);
  const node = state.nodes.get(nodeId);
  if (node === undefined) {
    return draft.decide({ kind: 'not-found', message: `no node ${nodeId} in group ${state.group.name}` });
  }
  const endedLeases = activeLeasesOfNode(state, nodeId).map((lease) => endLease(draft, lease, 'forgotten'));
  endDrainOfNode(draft, nodeId, 'forgotten');
  const lastLease = endedLeases.at(-1);
  draft.record({ kind: 'delete-node', group: state.group.name, nodeId });
  draft.event('node-forgotten', {
    nodeId,
    digest: node.currentDigest,
    leaseId: lastLease?.leaseId ?? null,
    fencingToken: lastLease?.fencingToken ?? null,
  });
  completeIfDone(draft);
  return draft.decide({ kind: 'forgotten', endedLeases });
}
