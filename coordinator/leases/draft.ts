import type { EventType } from '../../shared/api/v1.js';
import { applyChange } from '../state/apply.js';
import { newEvent, type Change, type Decision, type EventDetails, type GroupState, type NodeRecord } from '../state/model.js';

/**
 * How the pure rules (rules.ts, drain.ts) build a decision: a Draft collects the Changes of one
 * decision and shows the state as it would be after them.
 */

type NodeChange = Extract<Change, { kind: 'put-node' | 'heartbeat' | 'delete-node' }>;

/**
 * A working copy of a group's state plus the changes that led to it from the original.
 * Node edits are kept aside rather than applied to a copy of the node map: a heartbeat
 * must not cost a copy of every node of a large group. So `state` has no nodes; ask the
 * draft for them.
 */
export class Draft {
  private readonly view: GroupState;
  private readonly nodeEdits = new Map<string, NodeRecord | undefined>();
  private readonly copied = new Set<'rollouts' | 'activeLeases' | 'activeDrains'>();
  readonly changes: Change[] = [];

  constructor(
    private readonly original: GroupState,
    readonly nowMs: number,
  ) {
    this.view = { ...original };
  }

  get state(): Omit<GroupState, 'nodes'> {
    return this.view;
  }

  node(nodeId: string): NodeRecord | undefined {
    return this.nodeEdits.has(nodeId) ? this.nodeEdits.get(nodeId) : this.original.nodes.get(nodeId);
  }

  *nodes(): Iterable<NodeRecord> {
    for (const node of this.nodeEdits.values()) if (node !== undefined) yield node;
    for (const node of this.original.nodes.values()) if (!this.nodeEdits.has(node.nodeId)) yield node;
  }

  nodeCount(): number {
    let count = this.original.nodes.size;
    for (const [nodeId, node] of this.nodeEdits) {
      const existed = this.original.nodes.has(nodeId);
      if (node === undefined && existed) count -= 1;
      if (node !== undefined && !existed) count += 1;
    }
    return count;
  }

  record(change: Change): void {
    if (isNodeChange(change)) this.editNode(change);
    else this.applyToView(change);
    this.changes.push(change);
  }

  event(type: EventType, details: EventDetails): void {
    this.record({
      kind: 'append-event',
      event: newEvent({ ...details, type, group: this.view.group.name, atMs: this.nowMs }),
    });
  }

  decide<Result>(result: Result): Decision<Result> {
    return { result, changes: this.changes };
  }

  private editNode(change: NodeChange): void {
    if (change.kind === 'delete-node') this.nodeEdits.set(change.nodeId, undefined);
    else this.nodeEdits.set(change.node.nodeId, change.node);
  }

  // The original's collections are copied on their first write only.
  private applyToView(change: Exclude<Change, NodeChange>): void {
    if (change.kind === 'put-rollout' && !this.copied.has('rollouts')) {
      this.copied.add('rollouts');
      this.view.rollouts = [...this.view.rollouts];
    }
    if (change.kind === 'put-lease' && !this.copied.has('activeLeases')) {
      this.copied.add('activeLeases');
      this.view.activeLeases = new Map(this.view.activeLeases);
    }
    if (change.kind === 'put-drain' && !this.copied.has('activeDrains')) {
      this.copied.add('activeDrains');
      this.view.activeDrains = new Map(this.view.activeDrains);
    }
    applyChange(this.view, change);
  }
}

function isNodeChange(change: Change): change is NodeChange {
  return change.kind === 'put-node' || change.kind === 'heartbeat' || change.kind === 'delete-node';
}
