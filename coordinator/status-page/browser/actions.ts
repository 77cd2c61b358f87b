/// <reference lib="dom" />
import type { ShowToast } from './dom.js';
import type { GroupControls } from './groups.js';
import type { NodeControls } from './nodes.js';
import type { GroupActionName, NodeAction } from './types.js';

/**
 * The admin buttons' effects: POSTs to the API with the CSRF header, a toast with the answer, and
 * the buttons disabled while a request is out (browser code, see dom.ts).
 */
export function createActions(options: { nowMs: () => number; showToast: ShowToast; rerenderGroups: () => void; rerenderNodes: () => void }) {
  const confirmWindowMs = 4000;
  /** Until when an abort or rollback clicked once waits for its second click, by groupKey. */
  const armedUntilMs = new Map<string, number>();
  const busy = new Set<string>();
  const groupKey = (group: string, action: GroupActionName) => `${group}\u0000${action}`;
  const nodeKey = (group: string, nodeId: string) => `${group}\u0000${nodeId}\u0000drain`;

  const messageOf = (body: unknown): string | null =>
    typeof body === 'object' && body !== null && 'message' in body && typeof body.message === 'string' && body.message ? body.message : null;

  /** One admin request; what it did, or why not, goes to the toast. */
  async function post(path: string, body: object, subject: string, action: string, refusedWord: string): Promise<void> {
    try {
      const answer = await fetch(path, {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'content-type': 'application/json', 'x-baton-csrf': '1' },
        body: JSON.stringify(body),
      });
      const result: unknown = await answer.json();
      if (answer.ok) options.showToast(`${subject}: ${action} done.`, false);
      else options.showToast(`${subject}: ${action} ${refusedWord}: ${messageOf(result) ?? answer.status}`, true);
    } catch (error) {
      options.showToast(`${subject}: ${action} failed: ${String(error)}`, true);
    }
  }

  const isArmed = (group: string, action: GroupActionName) => (armedUntilMs.get(groupKey(group, action)) ?? 0) > options.nowMs();

  const groups: GroupControls = {
    isBusy: (group, action) => busy.has(groupKey(group, action)),
    isArmed,
    run(group, action) {
      const key = groupKey(group, action);
      if (action === 'abort' || action === 'rollback') {
        if (!isArmed(group, action)) {
          armedUntilMs.set(key, options.nowMs() + confirmWindowMs);
          options.rerenderGroups();
          return;
        }
        armedUntilMs.delete(key);
      }
      busy.add(key);
      options.rerenderGroups();
      const path = `/v1/groups/${encodeURIComponent(group)}/${action}`;
      void post(path, { reason: `${action} from the status page` }, `Group ${group}`, action, 'failed').finally(() => {
        busy.delete(key);
        options.rerenderGroups();
      });
    },
  };

  const nodes: NodeControls = {
    isBusy: (group, nodeId) => busy.has(nodeKey(group, nodeId)),
    run(group, nodeId, action: NodeAction) {
      const key = nodeKey(group, nodeId);
      busy.add(key);
      options.rerenderNodes();
      const body = action === 'drain' ? { group, reason: 'drained from the status page' } : { group };
      void post(`/v1/nodes/${encodeURIComponent(nodeId)}/${action}`, body, `Node ${nodeId}`, action, 'refused').finally(() => {
        busy.delete(key);
        options.rerenderNodes();
      });
    },
  };

  /** Forgets second clicks that did not come in time; true when a button should go back to its first label. */
  function expireConfirmations(): boolean {
    let expired = false;
    for (const [key, untilMs] of armedUntilMs) {
      if (untilMs > options.nowMs()) continue;
      armedUntilMs.delete(key);
      expired = true;
    }
    return expired;
  }

  return { groups, nodes, expireConfirmations };
}
