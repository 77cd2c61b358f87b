import type { DrainInfo } from '../../shared/api/v1.js';
import type { Decision, DrainEnd, DrainRecord, GroupPolicy, GroupState } from '../state/model.js';
import { capacityBlocker, isHeld } from './capacity.js';
import { Draft } from './draft.js';

/**
 * An operator's drain (`baton drain NODE`), pure like the lease rules: a lease-like record that
 * holds one of the group's maxUnavailable slots on the node's behalf. It is granted under the
 * same conditions as a rollout lease (a slot is free and no other node is out of service without
 * one) but has no TTL: it lasts until `baton undrain` or until the node is forgotten. A drain that
 * cannot be granted now is refused with the reason, never queued.
 */

export interface DrainNotFound {
  kind: 'not-found';
  message: string;
}

/** Why the node cannot be drained now: the group has no free slot, another node is out, or this one is updating. */
export interface DrainRefused {
  kind: 'refused';
  reason: 'busy' | 'unhealthy-peer' | 'updating';
  message: string;
}

export type DrainResult = DrainNotFound | DrainRefused | { kind: 'drained'; drain: DrainRecord; changed: boolean };
export type UndrainResult = DrainNotFound | { kind: 'undrained'; ended: DrainRecord | undefined };

/** The drain as the heartbeat, the status and the drain answer tell it. */
export function drainInfoOf(drain: DrainRecord | undefined): DrainInfo | null {
  return drain === undefined ? null : { reason: drain.reason, sinceMs: drain.startedAtMs };
}

function unknownNode(state: GroupState, nodeId: string): DrainNotFound {
  return { kind: 'not-found', message: `no node ${nodeId} in group ${state.group.name}` };
}

/** Drains `nodeId` in this group if a slot is free now; draining a drained node changes nothing. */
export function decideDrain(
  state: GroupState,
  nodeId: string,
  reason: string | undefined,
  policy: GroupPolicy,
  nowMs: number,
  drainId: string,
): Decision<DrainResult> {
  const draft = new Draft(state, nowMs);
  if (!state.nodes.has(nodeId)) return draft.decide(unknownNode(state, nodeId));
  const existing = state.activeDrains.get(nodeId);
  if (existing !== undefined) return draft.decide({ kind: 'drained', drain: existing, changed: false });
  const lease = [...state.activeLeases.values()].find((l) => l.nodeId === nodeId && isHeld(l, nowMs));
  if (lease !== undefined) {
    return draft.decide({
      kind: 'refused',
      reason: 'updating',
      message:
        `node ${nodeId} is updating in group ${state.group.name} (lease ${lease.leaseId} for ${lease.targetDigest}); ` +
        'drain it once its update has finished',
    });
  }
  const blocker = capacityBlocker(state, nodeId, policy, nowMs);
  if (blocker !== undefined) return draft.decide({ kind: 'refused', ...blocker });
  const drain: DrainRecord = {
    drainId,
    group: state.group.name,
    nodeId,
    reason: reason ?? null,
    startedAtMs: nowMs,
    endedAtMs: null,
    endedAs: null,
  };
  draft.record({ kind: 'put-drain', drain });
  draft.event('drain', {
    nodeId,
    reason: drain.reason,
    message: `node ${nodeId} drained by an operator${drain.reason === null ? '' : `: ${drain.reason}`}`,
  });
  return draft.decide({ kind: 'drained', drain, changed: true });
}

/** Ends the node's drain, freeing its slot; undraining a node that is not drained changes nothing. */
export function decideUndrain(state: GroupState, nodeId: string, nowMs: number): Decision<UndrainResult> {
  const draft = new Draft(state, nowMs);
  if (!state.nodes.has(nodeId)) return draft.decide(unknownNode(state, nodeId));
  const drain = state.activeDrains.get(nodeId);
  if (drain === undefined) return draft.decide({ kind: 'undrained', ended: undefined });
  const ended = endDrain(draft, drain, 'undrained');
  return draft.decide({ kind: 'undrained', ended });
}

/** For `forget`: a forgotten node's drain ends with it. */
export function endDrainOfNode(draft: Draft, nodeId: string, endedAs: DrainEnd): DrainRecord | undefined {
  const drain = draft.state.activeDrains.get(nodeId);
  return drain === undefined ? undefined : endDrain(draft, drain, endedAs);
}

function endDrain(draft: Draft, drain: DrainRecord, endedAs: DrainEnd): DrainRecord {
  const ended: DrainRecord = { ...drain, endedAtMs: draft.nowMs, endedAs };
  draft.record({ kind: 'put-drain', drain: ended });
  const seconds = Math.round((draft.nowMs - drain.startedAtMs) / 1_000);
  draft.event('undrain', {
    nodeId: drain.nodeId,
    reason: endedAs,
    message:
      endedAs === 'forgotten'
        ? `node ${drain.nodeId} forgotten: its drain (${seconds}s) ends with it`
        : `node ${drain.nodeId} undrained by an operator after ${seconds}s`,
  });
  return ended;
}
