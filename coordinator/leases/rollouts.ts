import type { LeaseRequest, RefusalReason, RolloutCause, RolloutState } from '../../shared/api/v1.js';
import type { GroupState, LeaseRecord, RolloutRecord } from '../state/model.js';
import { heldLeases } from './capacity.js';
import type { Draft } from './draft.js';

/**
 * Rollouts: which one a lease request is for (a rollout is a push, not a digest: see
 * docs/architecture.md, "Rollout identity"), opening, reopening, completing and halting them.
 * Pure, like every rule: each records its changes in the draft it is given.
 */

export interface RolloutProgress {
  totalNodes: number;
  onTarget: number;
  updating: number;
}

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

export function rolloutById(state: Omit<GroupState, 'nodes'>, rolloutId: string): RolloutRecord {
  const rollout = state.rollouts.find((r) => r.rolloutId === rolloutId);
  if (rollout === undefined) throw new Error(`group ${state.group.name} has no rollout ${rolloutId}`);
  return rollout;
}

export function putRollout(draft: Draft, rollout: RolloutRecord, update: Partial<RolloutRecord>): RolloutRecord {
  const updated = { ...rollout, ...update };
  draft.record({ kind: 'put-rollout', rollout: updated });
  return updated;
}

/** Completes the current rollout once every node runs its digest and nobody is updating. */
export function completeIfDone(draft: Draft): void {
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

export interface Refusal {
  reason: RefusalReason;
  message: string;
}

/**
 * The rollout a request is for. The current rollout's digest joins it (reopened if it had
 * completed: a node is still behind). Any other digest is a new push, opening a new rollout,
 * only if the agent looked at the tag after the current rollout opened (observedAfterSeq);
 * otherwise the agent saw an older tag and is told so (`stale`), and it polls again.
 */
export function rolloutForRequest(draft: Draft, request: LeaseRequest, rolloutId: string): RolloutRecord | Refusal {
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

export function reopenIfCompleted(draft: Draft, rollout: RolloutRecord, nodeId: string): RolloutRecord {
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

export function openRolloutState(state: Pick<GroupState, 'group'>): RolloutState {
  return state.group.paused ? 'paused' : 'in-progress';
}

export interface RolloutOpening {
  cause: RolloutCause;
  digest: string;
  image: string | null;
  rolledBackFrom: string | null;
  /** For the event: who or what opened it. */
  nodeId: string | null;
  message: string;
}

export function newPush(draft: Draft, request: LeaseRequest): RolloutOpening {
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


export function refusalOfEndedRollout(state: Omit<GroupState, 'nodes'>, rollout: RolloutRecord): Refusal | undefined {
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

// An ended rollout keeps its ending: the first halt names the culprit, and a superseded or
// aborted rollout is over anyway (its digest is rolled out again only by a new rollout).
export function haltRollout(draft: Draft, lease: LeaseRecord, reason: string): void {
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

export function isOpenOrCompleted(state: RolloutState): boolean {
  return state === 'in-progress' || state === 'paused' || state === 'completed';
}

/** Opens the group's next rollout; the current one, if still open or completed, is superseded by it. */
export function openRollout(draft: Draft, opening: RolloutOpening, rolloutId: string): RolloutRecord {
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
