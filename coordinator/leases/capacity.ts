import type { GroupPolicy, GroupState, LeaseRecord, NodeRecord } from '../state/model.js';
import { effectiveMaxUnavailable } from './policy.js';

/**
 * Who is out of service in a group, and whether one more node may be: the one condition a rollout
 * lease (rules.ts) and an operator's drain (drain.ts) are both granted under. A group's slots
 * (maxUnavailable) are taken by held leases and by drains alike; any other node that is unhealthy
 * or silent is missing capacity, and nothing more is taken out while it is.
 */

const MAX_NAMED_NODES = 5;

/** A node is silent once its last heartbeat is older than the miss limit. */
export function isSilent(node: NodeRecord, policy: GroupPolicy, nowMs: number): boolean {
  return nowMs - node.lastHeartbeatMs > policy.heartbeatMissLimitMs;
}

/** Whether a lease still entitles its node to be out of service (an expired one does not, recorded or not). */
export function isHeld(lease: LeaseRecord, nowMs: number): boolean {
  return lease.endedAtMs === null && lease.expiresAtMs > nowMs;
}

export function heldLeases(state: Pick<GroupState, 'activeLeases'>, nowMs: number): LeaseRecord[] {
  return [...state.activeLeases.values()].filter((lease) => isHeld(lease, nowMs));
}

export interface CapacityRefusal {
  reason: 'busy' | 'unhealthy-peer';
  message: string;
}

/**
 * Why `nodeId` may not be taken out of service now, if it may not: every slot is taken (held
 * leases plus drains), or another node is out of service without a slot.
 */
export function capacityBlocker(state: GroupState, nodeId: string, policy: GroupPolicy, nowMs: number): CapacityRefusal | undefined {
  const group = state.group.name;
  const held = heldLeases(state, nowMs);
  const drains = [...state.activeDrains.values()];
  const taken = held.length + drains.length;
  const allowed = effectiveMaxUnavailable(policy, state.nodes.size);
  if (taken >= allowed) {
    const holders = nameList([
      ...held.map((lease) => lease.nodeId),
      ...drains.map((drain) => `${drain.nodeId} (drained${drain.reason === null ? '' : `: ${drain.reason}`})`),
    ]);
    const what = drains.length === 0 ? 'updating' : 'out of service';
    return { reason: 'busy', message: `group ${group} already has ${taken} of ${allowed} allowed nodes ${what} (${holders})` };
  }
  const slotHolders = new Set([...held.map((lease) => lease.nodeId), ...state.activeDrains.keys()]);
  const missing = peersOutOfService(state, nodeId, slotHolders, policy, nowMs);
  if (missing.length > 0) {
    return {
      reason: 'unhealthy-peer',
      message: `group ${group} is already missing capacity: ${nameList(missing)}; waiting for them to recover or be forgotten`,
    };
  }
  return undefined;
}

/** Other nodes already out of service without a slot (a lease or a drain), described for the refusal message. */
function peersOutOfService(state: GroupState, nodeId: string, slotHolders: Set<string>, policy: GroupPolicy, nowMs: number): string[] {
  const missing: string[] = [];
  for (const node of state.nodes.values()) {
    if (node.nodeId === nodeId || slotHolders.has(node.nodeId)) continue;
    if (isSilent(node, policy, nowMs)) {
      missing.push(`${node.nodeId} (silent for ${Math.round((nowMs - node.lastHeartbeatMs) / 1_000)}s)`);
    } else if (node.health !== 'healthy') {
      missing.push(`${node.nodeId} (${node.health})`);
    }
  }
  return missing;
}

export function nameList(names: string[]): string {
  const shown = names.slice(0, MAX_NAMED_NODES).join(', ');
  const more = names.length - MAX_NAMED_NODES;
  return more > 0 ? `${shown} and ${more} more` : shown;
}
