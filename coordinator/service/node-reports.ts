import type { Logger } from '../../shared/logger.js';

/** One node in one group, as a map key. */
export function nodeKey(group: string, nodeId: string): string {
  return `${group}\u0000${nodeId}`;
}

/**
 * What the coordinator knows about nodes but never stores: the config problem and the
 * unhealthy reason each node's last heartbeat reported (resent with every beat), and which
 * nodes should poll at their next heartbeat.
 */
export class NodeReports {
  private readonly pendingPolls = new Map<string, Set<string>>();
  private readonly configProblems = new Map<string, string>();
  private readonly healthReasons = new Map<string, string>();

  constructor(private readonly logger: Logger) {}

  /** The node polls the registry at its next heartbeat instead of at its next scheduled poll. */
  requestPoll(group: string, nodeId: string): void {
    let nodes = this.pendingPolls.get(group);
    if (!nodes) {
      nodes = new Set();
      this.pendingPolls.set(group, nodes);
    }
    nodes.add(nodeId);
  }

  /** Whether the node was asked to poll; the request is used up. */
  takePoll(group: string, nodeId: string): boolean {
    return this.pendingPolls.get(group)?.delete(nodeId) ?? false;
  }

  /** Keeps what a heartbeat reports about the node's config file and health. */
  noteHeartbeat(
    group: string,
    nodeId: string,
    report: { configProblem?: string | null | undefined; health: string; healthReason?: string | null | undefined },
  ): void {
    this.noteConfigProblem(group, nodeId, report.configProblem ?? null);
    const key = nodeKey(group, nodeId);
    if (report.healthReason === undefined || report.healthReason === null || report.health === 'healthy') this.healthReasons.delete(key);
    else this.healthReasons.set(key, report.healthReason);
  }

  configProblemOf(group: string, nodeId: string): string | null {
    return this.configProblems.get(nodeKey(group, nodeId)) ?? null;
  }

  healthReasonOf(group: string, nodeId: string): string | null {
    return this.healthReasons.get(nodeKey(group, nodeId)) ?? null;
  }

  forget(group: string, nodeId: string): void {
    this.configProblems.delete(nodeKey(group, nodeId));
    this.healthReasons.delete(nodeKey(group, nodeId));
  }

  /** Keeps (or clears) a node's reported config problem, logging when it appears or goes away. */
  private noteConfigProblem(group: string, nodeId: string, problem: string | null): void {
    const key = nodeKey(group, nodeId);
    const before = this.configProblems.get(key);
    if (problem === null) {
      if (before === undefined) return;
      this.configProblems.delete(key);
      this.logger.info({ group, node: nodeId }, 'node runs on a valid config again');
      return;
    }
    this.configProblems.set(key, problem);
    if (before !== problem) {
      this.logger.warn({ group, node: nodeId, configProblem: problem }, 'node runs on its last known good config: its config file is invalid');
    }
  }
}
