import type { DrainResponse, StatusResponse } from '../shared/api/v1.js';
import { escapeForTerminal as esc, formatAge, formatDuration, renderTable, shortDigest } from './format.js';

/**
 * What `baton status`, `baton nodes`, `drain` and `undrain` print. Every string the coordinator
 * sent goes through escapeForTerminal (renderTable escapes its cells): stored data may predate
 * the API's refusal of control characters, and the coordinator may not be a trusted one.
 */

export function describeDrain(command: 'drain' | 'undrain', answer: DrainResponse): string {
  return answer.groups
    .map(({ group, drained, changed }) => {
      if (command === 'undrain') return `${esc(answer.nodeId)} (${esc(group)}): ${changed ? 'undrained, back in service' : 'was not drained'}`;
      const why = drained?.reason ? `: ${esc(drained.reason)}` : '';
      const since = drained ? ` since ${new Date(drained.sinceMs).toISOString()}` : '';
      return `${esc(answer.nodeId)} (${esc(group)}): ${changed ? 'drained' : 'already drained'}${since}${why}`;
    })
    .join('\n');
}

export function renderStatus(status: StatusResponse, url: string): string {
  const now = status.serverTimeMs;
  const sections: string[] = [`Coordinator ${esc(url)} at ${new Date(now).toISOString()}`];
  if (status.groups.length === 0) {
    sections.push('No groups yet: agents join a group with their first heartbeat.');
    return sections.join('\n\n');
  }

  sections.push(
    renderTable(
      ['GROUP', 'PAUSED', 'MAX UNAVAILABLE', 'NODES', 'ROLLOUT', 'TARGET', 'PROGRESS', 'LEASES', 'OPENED'],
      status.groups.map((group) => {
        const rollout = group.rollout;
        const policy = group.policy;
        const maxUnavailable =
          typeof policy.maxUnavailable === 'string'
            ? `${policy.maxUnavailable} (${policy.effectiveMaxUnavailable})`
            : String(policy.effectiveMaxUnavailable);
        return [
          group.name,
          group.paused ? 'yes' : 'no',
          maxUnavailable,
          String(group.nodes.length),
          rollout?.state ?? '-',
          shortDigest(rollout?.targetDigest),
          rollout
            ? `${rollout.progress.onTarget}/${rollout.progress.totalNodes} on target, ${rollout.progress.updating} updating`
            : '-',
          `${group.leases.length}/${policy.effectiveMaxUnavailable}`,
          rollout ? formatAge(rollout.openedAtMs, now) : '-',
        ];
      }),
    ),
  );

  const notes = status.groups.flatMap((group) => {
    const rollout = group.rollout;
    if (!rollout || rollout.state !== 'halted') return [];
    const by = rollout.haltedByNodeId !== null ? ` by node ${rollout.haltedByNodeId}` : '';
    const why = rollout.haltReason !== null ? `: ${rollout.haltReason}` : '';
    return [esc(`! ${group.name}: rollout to ${shortDigest(rollout.targetDigest)} halted${by}${why} (push a fixed image, or baton retry ${group.name})`)];
  });
  if (notes.length > 0) sections.push(notes.join('\n'));

  sections.push(renderNodes(status.groups.flatMap((group) => group.nodes), now));

  const leases = status.groups.flatMap((group) => group.leases);
  sections.push(
    leases.length === 0
      ? 'No leases held.'
      : renderTable(
          ['LEASE', 'GROUP', 'NODE', 'TOKEN', 'TARGET', 'HELD FOR', 'EXPIRES IN'],
          leases.map((lease) => [
            lease.leaseId,
            lease.group,
            lease.nodeId,
            String(lease.fencingToken),
            shortDigest(lease.targetDigest),
            formatDuration(now - lease.grantedAtMs),
            formatDuration(lease.timeLeftMs),
          ]),
        ),
  );
  return sections.join('\n\n');
}

export function renderNodes(nodes: StatusResponse['groups'][number]['nodes'], nowMs: number): string {
  if (nodes.length === 0) return 'No nodes.';
  // One line per agent running on its last known good config (its config file is invalid).
  const configProblems = nodes.flatMap((node) => (node.configProblem !== null ? [esc(`! ${node.nodeId} (${node.group}): ${node.configProblem}`)] : []));
  // One line per node an operator drained (it holds one of its group's slots until undrained).
  const drained = nodes.flatMap((node) =>
    node.drained !== null
      ? [esc(`~ ${node.nodeId} (${node.group}): drained for ${formatDuration(nowMs - node.drained.sinceMs)}${node.drained.reason !== null ? `: ${node.drained.reason}` : ''}`)]
      : [],
  );
  const table = renderTable(
    ['NODE', 'GROUP', 'HOST', 'HEALTH', 'STEP', 'DIGEST', 'VERSION', 'LAST HEARTBEAT'],
    nodes.map((node) => [
      node.nodeId,
      node.group,
      node.host,
      `${node.healthReason === null ? node.health : `${node.health}: ${node.healthReason}`}${node.drained !== null ? ' (drained)' : ''}`,
      node.step,
      shortDigest(node.currentDigest),
      node.agentVersion,
      `${formatAge(node.lastHeartbeatMs, nowMs)}${node.silent ? ' (SILENT)' : ''}`,
    ]),
  );
  const notes = [...drained, ...configProblems];
  return notes.length === 0 ? table : `${table}\n\n${notes.join('\n')}`;
}
