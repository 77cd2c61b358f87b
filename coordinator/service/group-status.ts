import type { StatusResponse } from '../../shared/api/v1.js';
import { drainInfoOf } from '../leases/drain.js';
import { effectiveMaxUnavailable } from '../leases/policy.js';
import { currentRollout, isSilent, progressOf } from '../leases/rules.js';
import type { GroupPolicy, GroupState } from '../state/model.js';
import type { NodeReports } from './node-reports.js';

/** One group as GET /v1/status shows it: the cached state, with what heartbeats reported and never stored. */
export function groupStatusOf(
  state: GroupState,
  policy: GroupPolicy,
  reports: Pick<NodeReports, 'configProblemOf' | 'healthReasonOf'>,
  nowMs: number,
): StatusResponse['groups'][number] {
  const rollout = currentRollout(state);
  return {
    name: state.group.name,
    paused: state.group.paused,
    policy: {
      maxUnavailable: policy.maxUnavailable,
      effectiveMaxUnavailable: effectiveMaxUnavailable(policy, state.nodes.size),
      leaseTtlMs: policy.leaseTtlMs,
      heartbeatMissLimitMs: policy.heartbeatMissLimitMs,
    },
    rollout: rollout ? { ...rollout, progress: progressOf(state, rollout) } : null,
    nodes: [...state.nodes.values()]
      .sort((a, b) => a.nodeId.localeCompare(b.nodeId))
      .map((node) => ({
        nodeId: node.nodeId,
        group: node.group,
        host: node.host,
        image: node.image,
        currentDigest: node.currentDigest,
        health: node.health,
        step: node.step,
        agentVersion: node.agentVersion,
        lastHeartbeatMs: node.lastHeartbeatMs,
        silent: isSilent(node, policy, nowMs),
        configProblem: reports.configProblemOf(node.group, node.nodeId),
        healthReason: reports.healthReasonOf(node.group, node.nodeId),
        drained: drainInfoOf(state.activeDrains.get(node.nodeId)),
      })),
    leases: [...state.activeLeases.values()].map((lease) => ({
      leaseId: lease.leaseId,
      group: lease.group,
      nodeId: lease.nodeId,
      targetDigest: lease.targetDigest,
      fencingToken: lease.fencingToken,
      grantedAtMs: lease.grantedAtMs,
      expiresAtMs: lease.expiresAtMs,
      timeLeftMs: Math.max(0, lease.expiresAtMs - nowMs),
    })),
  };
}
