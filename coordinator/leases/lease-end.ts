import type { ReleaseRequest, ReleaseResponse, RenewRequest, RenewResponse } from '../../shared/api/v1.js';
import type { Decision, GroupPolicy, GroupState, LeaseEnd, LeaseRecord } from '../state/model.js';
import { isHeld } from './capacity.js';
import { Draft } from './draft.js';
import { completeIfDone, haltRollout, rolloutById } from './rollouts.js';

/**
 * How leases end: renew (or not), release, expiry. Pure functions of a group's state, like the
 * rest of the lease rules (rules.ts re-exports them for the service).
 */

export interface NotFound {
  kind: 'not-found';
  message: string;
}
export interface StaleToken {
  kind: 'stale-token';
  message: string;
}
export interface LeaseEnded {
  kind: 'lease-ended';
  endedAs: LeaseEnd;
  message: string;
}


export type RenewResult = NotFound | StaleToken | LeaseEnded | { kind: 'renewed'; response: RenewResponse };
export type ReleaseResult = NotFound | StaleToken | LeaseEnded | { kind: 'released'; response: ReleaseResponse };

// ---- Building a decision

export function endLease(draft: Draft, lease: LeaseRecord, endedAs: LeaseEnd): LeaseRecord {
  const ended = { ...lease, endedAtMs: draft.nowMs, endedAs };
  draft.record({ kind: 'put-lease', lease: ended });
  return ended;
}

function expireLease(draft: Draft, lease: LeaseRecord): void {
  endLease(draft, lease, 'expired');
  draft.event('expiry', {
    nodeId: lease.nodeId,
    digest: lease.targetDigest,
    leaseId: lease.leaseId,
    fencingToken: lease.fencingToken,
    message: `lease ${lease.leaseId} of node ${lease.nodeId} expired without being renewed`,
  });
}

// ---- Expiry

/** Ends every lease whose TTL has run out; the service runs this before any other decision on the group. */
export function expireLeases(state: GroupState, nowMs: number): Decision<LeaseRecord[]> {
  const draft = new Draft(state, nowMs);
  const expired: LeaseRecord[] = [];
  for (const lease of state.activeLeases.values()) {
    if (lease.expiresAtMs > nowMs) continue;
    expireLease(draft, lease);
    expired.push(lease);
  }
  return draft.decide(expired);
}

// ---- Renew and release

type LeaseProblem = NotFound | StaleToken | LeaseEnded;

/** The lease a renew or release may act on, or why there is none (recording its expiry if that is news). */
function liveLease(
  draft: Draft,
  leaseId: string,
  fencingToken: number,
  endedLease: LeaseRecord | undefined,
): { lease: LeaseRecord } | { problem: LeaseProblem } {
  const lease = draft.state.activeLeases.get(leaseId);
  if (lease === undefined) return { problem: missingLease(leaseId, endedLease) };
  if (lease.fencingToken !== fencingToken) {
    return {
      problem: {
        kind: 'stale-token',
        message: `lease ${leaseId} has fencing token ${lease.fencingToken}, not ${fencingToken}`,
      },
    };
  }
  if (!isHeld(lease, draft.nowMs)) {
    expireLease(draft, lease);
    return { problem: leaseEnded(leaseId, 'expired') };
  }
  return { lease };
}

function missingLease(leaseId: string, endedLease: LeaseRecord | undefined): LeaseProblem {
  if (endedLease !== undefined) return leaseEnded(leaseId, endedLease.endedAs ?? 'expired');
  return { kind: 'not-found', message: `no lease ${leaseId}` };
}

function leaseEnded(leaseId: string, endedAs: LeaseEnd): LeaseEnded {
  return { kind: 'lease-ended', endedAs, message: `lease ${leaseId} has already ended (${endedAs})` };
}

/**
 * `endedLease` is the store's record of a lease no longer active, if the service found one:
 * the state keeps only active leases, so it alone cannot tell "ended" from "never existed".
 */
export function decideRenew(
  state: GroupState,
  leaseId: string,
  request: RenewRequest,
  policy: GroupPolicy,
  nowMs: number,
  endedLease?: LeaseRecord,
): Decision<RenewResult> {
  const draft = new Draft(state, nowMs);
  const found = liveLease(draft, leaseId, request.fencingToken, endedLease);
  if ('problem' in found) return draft.decide(found.problem);
  const renewed = { ...found.lease, expiresAtMs: nowMs + policy.leaseTtlMs };
  draft.record({ kind: 'put-lease', lease: renewed });
  draft.event('renew', {
    nodeId: renewed.nodeId,
    digest: renewed.targetDigest,
    leaseId,
    fencingToken: renewed.fencingToken,
  });
  return draft.decide({
    kind: 'renewed',
    response: {
      leaseId,
      fencingToken: renewed.fencingToken,
      ttlMs: policy.leaseTtlMs,
      expiresAtMs: renewed.expiresAtMs,
    },
  });
}

export function decideRelease(
  state: GroupState,
  leaseId: string,
  request: ReleaseRequest,
  nowMs: number,
  endedLease?: LeaseRecord,
): Decision<ReleaseResult> {
  const draft = new Draft(state, nowMs);
  const found = liveLease(draft, leaseId, request.fencingToken, endedLease);
  if ('problem' in found) {
    haltOnLateFailure(draft, request, state.activeLeases.get(leaseId) ?? endedLease, found.problem);
    return draft.decide(found.problem);
  }
  const { lease } = found;
  endLease(draft, lease, request.outcome);
  draft.event('release', {
    nodeId: lease.nodeId,
    digest: lease.targetDigest,
    leaseId,
    fencingToken: lease.fencingToken,
    outcome: request.outcome,
    message: request.message ?? null,
  });
  if (request.outcome === 'updated') recordUpdatedNode(draft, lease);
  if (request.outcome === 'failed') haltRollout(draft, lease, request.message ?? 'health checks failed');
  // Any lease handed back may have been the last thing keeping a finished rollout open.
  completeIfDone(draft);
  return draft.decide({
    kind: 'released',
    response: { leaseId, outcome: request.outcome, rolloutState: rolloutById(draft.state, lease.rolloutId).state },
  });
}

/**
 * A `failed` report that arrives after its lease ended is still refused, but the digest it
 * names did fail its health checks: halting anyway keeps every other node off it (I3).
 */
function haltOnLateFailure(
  draft: Draft,
  request: ReleaseRequest,
  lease: LeaseRecord | undefined,
  problem: LeaseProblem,
): void {
  if (request.outcome !== 'failed' || problem.kind !== 'lease-ended') return;
  if (lease === undefined || lease.fencingToken !== request.fencingToken) return;
  haltRollout(draft, lease, `${request.message ?? 'health checks failed'} (reported after the lease ended)`);
}

function recordUpdatedNode(draft: Draft, lease: LeaseRecord): void {
  const node = draft.node(lease.nodeId);
  if (node !== undefined) {
    draft.record({
      kind: 'heartbeat',
      node: { ...node, currentDigest: lease.targetDigest, health: 'healthy', step: 'idle' },
    });
  }
}
