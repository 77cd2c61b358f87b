import type { CoordinatorConfig } from '../../shared/config/coordinator.js';
import type { GroupPolicy } from '../state/model.js';

/** The policy of one group: its overrides in `config.groups`, falling back to the top-level values. */
export function resolvePolicy(config: CoordinatorConfig, group: string): GroupPolicy {
  // hasOwn: a group named like an Object.prototype member ("constructor") has no overrides.
  const overrides = Object.hasOwn(config.groups, group) ? config.groups[group] : undefined;
  return {
    maxUnavailable: overrides?.maxUnavailable ?? config.maxUnavailable,
    leaseTtlMs: overrides?.leaseTtlMs ?? config.leaseTtlMs,
    heartbeatMissLimitMs: overrides?.heartbeatMissLimitMs ?? config.heartbeatMissLimitMs,
  };
}

/**
 * How many leases the group may hold at once. A whole number is taken as is; a percentage
 * of the group's nodes is rounded down, but is never below 1 or no rollout could ever start.
 */
export function effectiveMaxUnavailable(policy: GroupPolicy, nodeCount: number): number {
  const { maxUnavailable } = policy;
  if (typeof maxUnavailable === 'number') return maxUnavailable;
  const percent = Number(maxUnavailable.slice(0, -1));
  return Math.max(1, Math.floor((percent * nodeCount) / 100));
}
