/// <reference lib="dom" />
import type { Dom } from './dom.js';
import type { Format } from './format.js';
import type { NodeAction, StatusNode, StatusResponse } from './types.js';

/** The drain buttons' state and effect, owned by the admin actions (actions.ts). */
export interface NodeControls {
  isBusy(group: string, nodeId: string): boolean;
  run(group: string, nodeId: string, action: NodeAction): void;
}

/** The nodes table: one row a node, and a second row while its agent runs on its last known good config (browser code, see dom.ts). */
export function createNodesView(dom: Dom, format: Format, options: { admin: boolean; serverNowMs: () => number; controls: NodeControls }) {
  const { el } = dom;
  const healthClass: Readonly<Record<string, string>> = {
    healthy: 'ok',
    starting: 'info',
    draining: 'warn',
    unhealthy: 'bad',
    stopped: 'off',
    unknown: 'off',
  };

  /** An operator's drain (baton drain): the chip, and for admins the button that drains or undrains. */
  function drainControls(group: string, n: StatusNode): HTMLElement[] {
    const controls: HTMLElement[] = [];
    if (n.drained) {
      const reason = n.drained.reason;
      controls.push(el('span', { className: 'chip chip-warn', 'data-testid': 'node-drained', title: reason || '', text: 'drained' + (reason ? `: ${reason}` : '') }));
    }
    if (!options.admin) return controls;
    const action: NodeAction = n.drained ? 'undrain' : 'drain';
    const button = el('button', {
      type: 'button',
      className: 'btn btn-small',
      'data-testid': action,
      'data-node-id': n.nodeId,
      'data-group': group,
      text: n.drained ? 'Undrain' : 'Drain',
    });
    if (options.controls.isBusy(group, n.nodeId)) button.disabled = true;
    button.addEventListener('click', () => options.controls.run(group, n.nodeId, action));
    controls.push(button);
    return controls;
  }

  function render(status: StatusResponse): void {
    const rows: HTMLElement[] = [];
    dom.byId('nodes').classList.toggle('one-group', status.groups.length <= 1);
    for (const g of status.groups) {
      const target = g.rollout ? g.rollout.targetDigest : null;
      const holders = new Set(g.leases.map((l) => l.nodeId));
      for (const n of g.nodes) {
        const onTarget = target !== null && n.currentDigest === target;
        const rowClass = (holders.has(n.nodeId) ? 'holding' : '') + (n.configProblem ? ' has-config-problem' : '');
        rows.push(
          el(
            'tr',
            { 'data-testid': 'node-row', 'data-node-id': n.nodeId, 'data-group': g.name, className: rowClass.trim() },
            el('td', { 'data-testid': 'node-id', className: 'node-id', text: n.nodeId }),
            el('td', { 'data-testid': 'node-group', className: 'col-group', text: g.name }),
            el('td', { 'data-testid': 'node-host', className: 'muted', text: n.host }),
            el(
              'td',
              { 'data-testid': 'node-digest', 'data-on-target': onTarget ? 'true' : 'false' },
              el('code', { className: 'digest', title: n.currentDigest || '', text: format.shortDigest(n.currentDigest) }),
              target !== null && el('span', { className: `chip ${onTarget ? 'chip-ok' : 'chip-muted'}`, text: onTarget ? 'target' : 'previous' }),
            ),
            el(
              'td',
              { 'data-testid': 'node-health' },
              el('span', {
                className: `health health-${n.silent ? 'bad' : healthClass[n.health] || 'off'}`,
                'data-health': n.silent ? 'silent' : n.health,
                'data-reason': n.healthReason || '',
                text: n.silent ? `silent (${n.health})` : n.health + (n.healthReason ? `: ${n.healthReason}` : ''),
              }),
            ),
            el('td', { 'data-testid': 'node-heartbeat', className: 'muted', 'data-at': n.lastHeartbeatMs, text: format.ago(n.lastHeartbeatMs, options.serverNowMs()) }),
            el('td', { 'data-testid': 'node-step' }, el('span', { className: 'chip' + (n.step === 'idle' ? ' chip-muted' : ''), text: n.step })),
            el('td', { 'data-testid': 'node-drain' }, ...drainControls(g.name, n)),
          ),
        );
        // The agent runs on its last known good config: its config file is invalid (soft state from its heartbeat).
        if (n.configProblem) {
          rows.push(
            el(
              'tr',
              { className: 'config-problem-row', 'data-testid': 'node-config-problem', 'data-node-id': n.nodeId, 'data-group': g.name },
              el(
                'td',
                { colspan: 8 },
                el('span', { className: 'chip chip-bad', text: 'config invalid' }),
                el('span', { className: 'config-problem-text', text: n.configProblem }),
              ),
            ),
          );
        }
      }
    }
    if (rows.length === 0) rows.push(el('tr', {}, el('td', { colspan: 8, className: 'muted', text: 'No nodes yet.' })));
    dom.replaceAll(dom.byId('nodes-body'), rows);
  }

  return { render };
}
