import type { Logger } from '../../shared/logger.js';
import type { Change, NodeRecord } from '../state/model.js';
import type { Store } from '../store/store.js';
import { nodeKey } from './node-reports.js';

const flushChunkSize = 250;

/**
 * Heartbeats change only the cache; the nodes they touched wait here until the next flush
 * writes them to the store (a durable change that rewrites a node makes its wait moot).
 */
export class UnsavedHeartbeats {
  private readonly nodes = new Map<string, NodeRecord>();

  constructor(
    private readonly store: Pick<Store, 'saveHeartbeats'>,
    private readonly logger: Logger,
  ) {}

  /** Follows a batch of changes just applied to the cache. */
  note(changes: readonly Change[]): void {
    for (const change of changes) {
      if (change.kind === 'heartbeat') this.nodes.set(nodeKey(change.node.group, change.node.nodeId), change.node);
      if (change.kind === 'put-node') this.nodes.delete(nodeKey(change.node.group, change.node.nodeId));
    }
  }

  forget(group: string, nodeId: string): void {
    this.nodes.delete(nodeKey(group, nodeId));
  }

  /**
   * Writes them in small chunks, yielding between them: the store is synchronous, and one
   * large batch would hold up grants for tens of milliseconds. A chunk that fails waits for
   * the next flush, unless a newer heartbeat of the same node came meanwhile.
   */
  async flush(): Promise<void> {
    if (this.nodes.size === 0) return;
    const nodes = [...this.nodes.values()];
    this.nodes.clear();
    for (let start = 0; start < nodes.length; start += flushChunkSize) {
      const chunk = nodes.slice(start, start + flushChunkSize);
      try {
        await this.store.saveHeartbeats(chunk);
      } catch (error) {
        this.logger.warn({ err: error, nodes: chunk.length }, 'could not save heartbeats; will retry');
        for (const node of chunk) {
          const key = nodeKey(node.group, node.nodeId);
          if (!this.nodes.has(key)) this.nodes.set(key, node);
        }
      }
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }
}
