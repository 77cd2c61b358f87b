import type { z } from 'zod';
import type {
  GroupActionName,
  GroupActionResponse,
  heartbeatRequestSchema,
  HeartbeatResponse,
  LeaseDecision,
  LeaseGrant,
  LeaseRequest,
  RefusalReason,
  ReleaseRequest,
  ReleaseResponse,
  RenewRequest,
  RenewResponse,
  RolloutCause,
  RolloutState,
} from '../../shared/api/v1.js';
import type {
  Decision,
  GroupPolicy,
  GroupState,
  LeaseEnd,
  LeaseRecord,
  NodeRecord,
  RolloutRecord,
} from '../state/model.js';
import { capacityBlocker, heldLeases, isHeld, isSilent } from './capacity.js';
import { drainInfoOf, endDrainOfNode } from './drain.js';
import { Draft } from './draft.js';
import { effectiveMaxUnavailable } from './policy.js';

export { heldLeases, isHeld, isSilent } from './capacity.js';

/**
 * The coordinator's lease and rollout rules: pure functions of a group's state. Each returns
 * the answer and the Changes that make it true; none touches its input, reads the clock or
 * makes up ids.
 */

export type ParsedHeartbeatRequest = z.output<typeof heartbeatRequestSchema>;

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
export interface Conflict {
  kind: 'conflict';
  message: string;
}

export type AcquireResult = NotFound | { kind: 'decision'; decision: LeaseDecision };
export type RenewResult = NotFound | StaleToken | LeaseEnded | { kind: 'renewed'; response: RenewResponse };
export type ReleaseResult = NotFound | StaleToken | LeaseEnded | { kind: 'released'; response: ReleaseResponse };
export type GroupAction = GroupActionName;
export type GroupActionResult = Conflict | { kind: 'done'; response: GroupActionResponse };
export type ForgetResult = NotFound | { kind: 'forgotten'; endedLeases: LeaseRecord[] };

export interface RolloutProgress {
  totalNodes: number;
  onTarget: number;
  updating: number;
}

const PAUSED_RETRY_MS = 10_000;
const FINAL_REFUSAL_RETRY_MS = 60_000;

// ---- Reading the state

/** The rollout the group is on: the newest one (every older one was superseded or had ended). */
export function currentRollout(state: Pick<GroupState, 'rollouts'>): RolloutRecord | undefined {
  return state.rollouts.at(-1);
}

/** The digest the group's tag pointed at when `rollout` opened: a rollback's is the one it rolled back from. */
export function tagDigestOf(rollout: RolloutRecord): string {
  return rollout.rolledBackFrom ?? rollout.targetDigest;
}

/** How far a rollout has come; `updating` counts the leases out for it. */
export function progressOf(state: GroupState, rollout: RolloutRecord): RolloutProgress {
  let onTarget = 0;
  for (const node of state.nodes.values()) if (node.currentDigest === rollout.targetDigest) onTarget += 1;
  let updating = 0;
  for (const lease of state.activeLeases.values()) if (lease.rolloutId === rollout.rolloutId) updating += 1;
  return { totalNodes: state.nodes.size, onTarget, updating };
}

function rolloutById(state: Omit<GroupState, 'nodes'>, rolloutId: string): RolloutRecord {
  const rollout = state.rollouts.find((r) => r.rolloutId === rolloutId);
  if (rollout === undefined) throw new Error(`group ${state.group.name} has no rollout ${rolloutId}`);
  return rollout;
}

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

// ---- Building a decision

function endLease(draft: Draft, lease: LeaseRecord, endedAs: LeaseEnd): LeaseRecord {
  const ended = { ...lease, endedAtMs: draft.nowMs, endedAs };
  draft.record({ kind: 'put-lease', lease: ended });
  return ended;
}

function putRollout(draft: Draft, rollout: RolloutRecord, update: Partial<RolloutRecord>): RolloutRecord {
  const updated = { ...rollout, ...update };
  draft.record({ kind: 'put-rollout', rollout: updated });
  return updated;
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

/** Completes the current rollout once every node runs its digest and nobody is updating. */
function completeIfDone(draft: Draft): void {
  const rollout = currentRollout(draft.state);
  if (rollout === undefined || rollout.state !== 'in-progress') return;
  if (heldLeases(draft.state, draft.nowMs).length > 0) return;
  for (const node of draft.nodes()) if (node.currentDigest !== rollout.targetDigest) return;
  putRollout(draft, rollout, { state: 'completed', endedAtMs: draft.nowMs, completedAtMs: draft.nowMs });
  draft.event('rollout-completed', {
    digest: rollout.targetDigest,
    message: `all ${draft.nodeCount()} nodes run ${rollout.targetDigest}`,
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

interface Refusal {
  reason: RefusalReason;
  message: string;
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

/**
 * The rollout a request is for. The current rollout's digest joins it (reopened if it had
 * completed: a node is still behind). Any other digest is a new push, opening a new rollout,
 * only if the agent looked at the tag after the current rollout opened (observedAfterSeq);
 * otherwise the agent saw an older tag and is told so (`stale`), and it polls again.
 */
function rolloutForRequest(draft: Draft, request: LeaseRequest, rolloutId: string): RolloutRecord | Refusal {
  const current = currentRollout(draft.state);
  if (current === undefined) return openRollout(draft, newPush(draft, request), rolloutId);
  if (current.targetDigest === request.targetDigest) return reopenIfCompleted(draft, current, request.nodeId);
  const group = draft.state.group.name;
  if (current.rolledBackFrom === request.targetDigest) {
    return {
      reason: 'rolled-back',
      message:
        `${request.targetDigest} was rolled back in group ${group} (rollout ${current.seq} runs ${current.targetDigest}); ` +
        '`baton retry` rolls it out again, and so does a push of another digest',
    };
  }
  if (isNewPush(draft.state, request, current)) return openRollout(draft, newPush(draft, request), rolloutId);
  if (request.observedAfterSeq === undefined) {
    return { reason: 'superseded', message: `${request.targetDigest} in group ${group} has been superseded by ${current.targetDigest}` };
  }
  return {
    reason: 'stale',
    message:
      `the tag was read before rollout ${current.seq} (${current.targetDigest}) opened in group ${group}, ` +
      `${request.observedAfterSeq} < ${current.seq}: poll again`,
  };
}

/**
 * Whether a request for a digest other than the current rollout's reports a newer push. An agent
 * that knew rollout N before its registry poll saw the tag after N opened, so what it saw is newer.
 * Older agents send no seq: only a digest never rolled out in the group counts as new for them.
 */
export function isNewPush(state: Pick<GroupState, 'rollouts'>, request: LeaseRequest, current: RolloutRecord): boolean {
  if (request.observedAfterSeq !== undefined) return request.observedAfterSeq >= current.seq;
  return !state.rollouts.some((rollout) => rollout.targetDigest === request.targetDigest);
}

function reopenIfCompleted(draft: Draft, rollout: RolloutRecord, nodeId: string): RolloutRecord {
  if (rollout.state !== 'completed') return rollout;
  const reopened = putRollout(draft, rollout, { state: openRolloutState(draft.state), endedAtMs: null });
  draft.event('rollout-opened', {
    nodeId,
    digest: rollout.targetDigest,
    reason: 'reopened',
    message: `rollout ${rollout.seq} reopened: node ${nodeId} is not on ${rollout.targetDigest} yet`,
  });
  return reopened;
}

function openRolloutState(state: Pick<GroupState, 'group'>): RolloutState {
  return state.group.paused ? 'paused' : 'in-progress';
}

interface RolloutOpening {
  cause: RolloutCause;
  digest: string;
  image: string | null;
  rolledBackFrom: string | null;
  /** For the event: who or what opened it. */
  nodeId: string | null;
  message: string;
}

function newPush(draft: Draft, request: LeaseRequest): RolloutOpening {
  const seq = (currentRollout(draft.state)?.seq ?? 0) + 1;
  return {
    cause: 'push',
    digest: request.targetDigest,
    image: request.image ?? null,
    rolledBackFrom: null,
    nodeId: request.nodeId,
    message: `rollout ${seq} of ${request.targetDigest} opened by node ${request.nodeId}`,
  };
}

/** Opens the group's next rollout; the current one, if still open or completed, is superseded by it. */
function openRollout(draft: Draft, opening: RolloutOpening, rolloutId: string): RolloutRecord {
  const current = currentRollout(draft.state);
  if (current !== undefined && isOpenOrCompleted(current.state)) {
    putRollout(draft, current, { state: 'superseded', endedAtMs: draft.nowMs });
    draft.event('rollout-superseded', {
      digest: current.targetDigest,
      message: `rollout ${current.seq} of ${current.targetDigest} superseded by ${opening.digest}`,
    });
  }
  const rollout: RolloutRecord = {
    rolloutId,
    group: draft.state.group.name,
    seq: (current?.seq ?? 0) + 1,
    cause: opening.cause,
    targetDigest: opening.digest,
    image: opening.image,
    state: openRolloutState(draft.state),
    openedAtMs: draft.nowMs,
    endedAtMs: null,
    completedAtMs: null,
    rolledBackFrom: opening.rolledBackFrom,
    haltedByNodeId: null,
    haltReason: null,
  };
  draft.record({ kind: 'put-rollout', rollout });
  draft.event('rollout-opened', { nodeId: opening.nodeId, digest: opening.digest, reason: opening.cause, message: opening.message });
  return rollout;
}

function refusalOfEndedRollout(state: Omit<GroupState, 'nodes'>, rollout: RolloutRecord): Refusal | undefined {
  const { targetDigest: digest } = rollout;
  const group = state.group.name;
  switch (rollout.state) {
    case 'halted':
      return {
        reason: 'halted',
        message:
          `${digest} is halted in group ${group}: node ${rollout.haltedByNodeId ?? '?'} ` +
          `reported "${rollout.haltReason ?? 'failure'}"; push a fixed image to roll forward, or \`baton retry\``,
      };
    case 'aborted':
      return {
        reason: 'aborted',
        message: `the rollout of ${digest} in group ${group} was aborted; \`baton retry\` or a new push rolls out again`,
      };
    default:
      return undefined;
  }
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

// An ended rollout keeps its ending: the first halt names the culprit, and a superseded or
// aborted rollout is over anyway (its digest is rolled out again only by a new rollout).
function haltRollout(draft: Draft, lease: LeaseRecord, reason: string): void {
  const rollout = rolloutById(draft.state, lease.rolloutId);
  if (!isOpenOrCompleted(rollout.state)) return;
  putRollout(draft, rollout, {
    state: 'halted',
    endedAtMs: draft.nowMs,
    haltedByNodeId: lease.nodeId,
    haltReason: reason,
  });
  draft.event('halt', {
    nodeId: lease.nodeId,
    digest: lease.targetDigest,
    leaseId: lease.leaseId,
    fencingToken: lease.fencingToken,
    reason,
    message: `node ${lease.nodeId} failed to update to ${lease.targetDigest}: ${reason}`,
  });
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

function isOpenOrCompleted(state: RolloutState): boolean {
  return state === 'in-progress' || state === 'paused' || state === 'completed';
}

// ---- Operator actions

/** `newRolloutId` names the rollout that `rollback` or `retry` opens. */
export function decideGroupAction(
  state: GroupState,
  action: GroupAction,
  reason: string | undefined,
  nowMs: number,
  newRolloutId: string,
): Decision<GroupActionResult> {
  const draft = new Draft(state, nowMs);
  let conflict: Conflict | undefined;
  switch (action) {
    case 'pause':
      pause(draft, reason);
      break;
    case 'resume':
      resume(draft, reason);
      break;
    case 'abort':
      conflict = abort(draft, reason);
      break;
    case 'rollback':
      conflict = rollBack(draft, reason, newRolloutId);
      break;
    case 'retry':
      conflict = retry(draft, reason, newRolloutId);
      break;
  }
  if (conflict !== undefined) return draft.decide(conflict);
  const rollout = currentRollout(draft.state);
  return draft.decide({
    kind: 'done',
    response: {
      group: draft.state.group.name,
      paused: draft.state.group.paused,
      rolloutState: rollout?.state ?? null,
      rolloutSeq: rollout?.seq ?? 0,
      targetDigest: rollout?.targetDigest ?? null,
    },
  });
}

/**
 * `baton rollback`: a new rollout back to the newest digest that completed before the current
 * one, under the same leases, drain and health gate. The tag still points at the digest rolled
 * back from, so agents are told to run the target instead while it does (rolledBackFrom).
 */
function rollBack(draft: Draft, reason: string | undefined, rolloutId: string): Conflict | undefined {
  const group = draft.state.group.name;
  const current = currentRollout(draft.state);
  if (current === undefined) return { kind: 'conflict', message: `nothing to roll back in group ${group}: no rollout yet` };
  const previous = draft.state.rollouts.findLast(
    (rollout) => rollout.seq < current.seq && rollout.completedAtMs !== null && rollout.targetDigest !== current.targetDigest,
  );
  if (previous === undefined) {
    return {
      kind: 'conflict',
      message: `nothing to roll back to in group ${group}: no rollout before ${current.seq} (${current.targetDigest}) completed`,
    };
  }
  const from = tagDigestOf(current);
  const seq = current.seq + 1;
  openRollout(
    draft,
    {
      cause: 'rollback',
      digest: previous.targetDigest,
      image: previous.image,
      rolledBackFrom: from === previous.targetDigest ? null : from,
      nodeId: null,
      message: `rollout ${seq} rolls back from ${from} to ${previous.targetDigest} (of rollout ${previous.seq})${reasonSuffix(reason)}`,
    },
    rolloutId,
  );
  return undefined;
}

/** `baton retry`: a new rollout of what a halted, aborted or rolled-back rollout meant to run. */
function retry(draft: Draft, reason: string | undefined, rolloutId: string): Conflict | undefined {
  const current = currentRollout(draft.state);
  const retryable = current !== undefined && (current.state === 'halted' || current.state === 'aborted' || current.rolledBackFrom !== null);
  if (current === undefined || !retryable) {
    const what = current === undefined ? 'no rollout' : `rollout ${current.seq} of ${current.targetDigest} is ${current.state}`;
    return { kind: 'conflict', message: `nothing to retry in group ${draft.state.group.name}: ${what}` };
  }
  const digest = tagDigestOf(current);
  openRollout(
    draft,
    {
      cause: 'retry',
      digest,
      image: current.image,
      rolledBackFrom: null,
      nodeId: null,
      message: `rollout ${current.seq + 1} retries ${digest} after rollout ${current.seq} (${current.state})${reasonSuffix(reason)}`,
    },
    rolloutId,
  );
  return undefined;
}

function reasonSuffix(reason: string | undefined): string {
  return reason === undefined || reason === '' ? '' : `: ${reason}`;
}

function pause(draft: Draft, reason: string | undefined): void {
  if (draft.state.group.paused) return;
  draft.record({ kind: 'put-group', group: { ...draft.state.group, paused: true } });
  const rollout = currentRollout(draft.state);
  if (rollout?.state === 'in-progress') putRollout(draft, rollout, { state: 'paused' });
  draft.event('pause', { digest: rollout?.targetDigest ?? null, reason: reason ?? null });
}

function resume(draft: Draft, reason: string | undefined): void {
  if (!draft.state.group.paused) return;
  draft.record({ kind: 'put-group', group: { ...draft.state.group, paused: false } });
  const rollout = currentRollout(draft.state);
  if (rollout?.state === 'paused') putRollout(draft, rollout, { state: 'in-progress' });
  draft.event('resume', { digest: rollout?.targetDigest ?? null, reason: reason ?? null });
  // Nodes may have finished while the group was paused.
  completeIfDone(draft);
}

function abort(draft: Draft, reason: string | undefined): Conflict | undefined {
  const rollout = currentRollout(draft.state);
  if (rollout === undefined || (rollout.state !== 'in-progress' && rollout.state !== 'paused')) {
    const what = rollout === undefined ? 'no rollout' : `its rollout of ${rollout.targetDigest} is ${rollout.state}`;
    return { kind: 'conflict', message: `nothing to abort in group ${draft.state.group.name}: ${what}` };
  }
  putRollout(draft, rollout, { state: 'aborted', endedAtMs: draft.nowMs });
  draft.event('abort', { digest: rollout.targetDigest, reason: reason ?? null });
  return undefined;
}

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
