import type { GroupActionName, GroupActionResponse } from '../../shared/api/v1.js';
import type { Decision, GroupState } from '../state/model.js';
import { Draft } from './draft.js';
import { completeIfDone, currentRollout, openRollout, putRollout, tagDigestOf } from './rollouts.js';

/** Operator actions on a group: pause, resume, abort, rollback and retry. Pure, like every rule. */

export type GroupAction = GroupActionName;
export type GroupActionResult = Conflict | { kind: 'done'; response: GroupActionResponse };

export interface Conflict {
  kind: 'conflict';
  message: string;
}

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
