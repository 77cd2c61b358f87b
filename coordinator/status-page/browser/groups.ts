/// <reference lib="dom" />
import type { Dom } from './dom.js';
import type { Format } from './format.js';
import type { GroupActionName, StatusGroup, StatusResponse, StatusRollout } from './types.js';

/** The group buttons' state and effect, owned by the admin actions (actions.ts). */
export interface GroupControls {
  isBusy(group: string, action: GroupActionName): boolean;
  /** An abort or rollback clicked once, waiting for its second click. */
  isArmed(group: string, action: GroupActionName): boolean;
  run(group: string, action: GroupActionName): void;
}

/** One card a group: its rollout, progress, halt, lease holders and admin buttons (browser code, see dom.ts). */
export function createGroupsView(dom: Dom, format: Format, options: { admin: boolean; serverNowMs: () => number; controls: GroupControls }) {
  const { el } = dom;
  const { duration, shortDigest } = format;
  const { controls } = options;
  const stateLabels: Readonly<Record<string, string>> = {
    'in-progress': 'In progress',
    completed: 'Completed',
    halted: 'Halted',
    paused: 'Paused',
    aborted: 'Aborted',
    superseded: 'Superseded',
    none: 'No rollout',
  };

  /** What needs attention first: halted, paused, rolling out; then the rest by name. */
  function orderGroups(groups: readonly StatusGroup[]): StatusGroup[] {
    const rank: Readonly<Record<string, number>> = { halted: 0, paused: 1, 'in-progress': 2 };
    const rankOf = (group: StatusGroup) => (group.rollout ? (rank[group.rollout.state] ?? 3) : 3);
    return groups.slice().sort((a, b) => rankOf(a) - rankOf(b) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** The tab's title: halted groups first, else the progress of the rollouts under way. */
  function pageTitle(status: StatusResponse): string {
    if (status.groups.some((g) => g.rollout?.state === 'halted')) return 'Halted · Baton';
    const rolling = status.groups.filter((g) => g.rollout?.state === 'in-progress');
    if (rolling.length === 0) return 'Baton';
    return rolling.map((g) => `${g.name} ${g.rollout?.progress.onTarget}/${g.rollout?.progress.totalNodes}`).join(', ') + ' · Baton';
  }

  function progressBar(rollout: StatusRollout, stateKey: string): HTMLElement {
    const total = rollout.progress.totalNodes;
    const done = rollout.progress.onTarget;
    const updating = Math.min(rollout.progress.updating, Math.max(0, total - done));
    const bar = el('div', {
      className: `bar bar-${stateKey}`,
      role: 'progressbar',
      'data-testid': 'progress',
      'aria-valuemin': 0,
      'aria-valuemax': total,
      'aria-valuenow': done,
      'data-on-target': done,
      'data-total': total,
      'data-updating': updating,
    });
    const fill = el('div', { className: 'bar-fill' });
    fill.style.width = `${total ? (100 * done) / total : 0}%`;
    const pending = el('div', { className: 'bar-updating' });
    pending.style.width = `${total ? (100 * updating) / total : 0}%`;
    bar.append(fill, pending);
    return bar;
  }

  function actionButton(group: string, action: GroupActionName, label: string, extraClass = ''): HTMLButtonElement {
    const button = el('button', { type: 'button', className: `btn ${extraClass}`, 'data-testid': action, 'data-group': group, text: label });
    if (controls.isBusy(group, action)) button.disabled = true;
    button.addEventListener('click', () => controls.run(group, action));
    return button;
  }

  function confirmedButton(group: string, action: GroupActionName, label: string, armedLabel: string): HTMLButtonElement {
    const armed = controls.isArmed(group, action);
    return actionButton(group, action, armed ? armedLabel : label, armed ? 'btn-danger armed' : 'btn-quiet');
  }

  function adminBar(group: StatusGroup): HTMLElement {
    const rollout = group.rollout;
    const open = rollout !== null && (rollout.state === 'in-progress' || rollout.state === 'paused');
    const retryable = rollout !== null && (rollout.state === 'halted' || rollout.state === 'aborted' || rollout.rolledBackFrom !== null);
    return el(
      'div',
      { className: 'actions', 'data-testid': 'admin-actions' },
      group.paused ? actionButton(group.name, 'resume', 'Resume') : actionButton(group.name, 'pause', 'Pause'),
      open && confirmedButton(group.name, 'abort', 'Abort', 'Click again to abort'),
      rollout !== null && confirmedButton(group.name, 'rollback', 'Roll back', 'Click again to roll back'),
      retryable && actionButton(group.name, 'retry', 'Retry'),
    );
  }

  function leaseList(group: StatusGroup): HTMLElement {
    const steps = new Map(group.nodes.map((n) => [n.nodeId, n.step]));
    const items = group.leases.map((lease) =>
      el(
        'li',
        { className: 'lease', 'data-testid': 'lease', 'data-node-id': lease.nodeId },
        el('span', { className: 'dot dot-busy' }),
        el('span', { className: 'lease-node', 'data-testid': 'lease-node', text: lease.nodeId }),
        el('span', { className: 'chip', 'data-testid': 'lease-step', text: steps.get(lease.nodeId) ?? '?' }),
        el('span', {
          className: 'lease-left muted',
          'data-testid': 'lease-time-left',
          'data-expires-at': lease.expiresAtMs,
          text: `${duration(lease.expiresAtMs - options.serverNowMs())} left`,
        }),
      ),
    );
    if (items.length === 0) items.push(el('li', { className: 'muted lease-none', text: 'No node is out of service.' }));
    return el('ul', { className: 'leases', 'data-testid': 'leases' }, ...items);
  }

  function rolloutSection(rollout: StatusRollout, stateKey: string): HTMLElement[] {
    const name = format.imageName(rollout.image);
    const cause =
      rollout.cause === 'rollback'
        ? 'rollback' + (rollout.rolledBackFrom ? ` from ${shortDigest(rollout.rolledBackFrom)}` : '')
        : rollout.cause === 'retry'
          ? 'retry'
          : 'push';
    const p = rollout.progress;
    const section = [
      el(
        'div',
        { className: 'target' },
        el('span', { className: 'muted', 'data-testid': 'rollout-seq', 'data-seq': rollout.seq, text: `Rollout ${rollout.seq} ` }),
        el('span', { className: 'chip', 'data-testid': 'rollout-cause', 'data-cause': rollout.cause, text: cause }),
        el('span', { className: 'muted', text: ' · target ' }),
        name !== null && el('span', { className: 'image-tag', 'data-testid': 'group-tag', text: name }),
        el('code', { className: 'digest', 'data-testid': 'group-digest', title: rollout.targetDigest, text: shortDigest(rollout.targetDigest) }),
      ),
      progressBar(rollout, stateKey),
      el(
        'div',
        { className: 'progress-label', 'data-testid': 'progress-label' },
        el('strong', { text: `${p.onTarget} of ${p.totalNodes}` }),
        ' nodes on target' +
          (p.updating ? ` · ${p.updating} updating` : '') +
          (rollout.state === 'completed' && rollout.endedAtMs ? ` · took ${duration(rollout.endedAtMs - rollout.openedAtMs)}` : ''),
      ),
    ];
    if (rollout.state === 'halted') {
      section.push(
        el(
          'div',
          { className: 'alert', role: 'alert', 'data-testid': 'halt' },
          el('div', { className: 'alert-title' }, 'Halted by ', el('strong', { 'data-testid': 'halt-node', text: rollout.haltedByNodeId || 'unknown node' })),
          el('div', { className: 'alert-reason', 'data-testid': 'halt-reason', text: rollout.haltReason || 'no reason given' }),
          el('div', { className: 'muted small', text: 'The node rolled back. Push a fixed image to roll forward, or Retry after a fix elsewhere.' }),
        ),
      );
    }
    if (rollout.state === 'aborted') {
      section.push(el('div', { className: 'note', text: 'Aborted by an operator. Push a new image, or Retry, to roll out again.' }));
    }
    return section;
  }

  function groupCard(group: StatusGroup): HTMLElement {
    const rollout = group.rollout;
    const stateKey = rollout ? rollout.state : 'none';
    return el(
      'article',
      { className: `card group state-${stateKey}`, 'data-testid': 'group', 'data-group': group.name, 'data-state': stateKey },
      el(
        'div',
        { className: 'card-head' },
        el('h3', { 'data-testid': 'group-name', text: group.name }),
        el('span', { className: `badge badge-${stateKey}`, 'data-testid': 'rollout-state', 'data-state': stateKey, text: stateLabels[stateKey] || stateKey }),
      ),
      ...(rollout ? rolloutSection(rollout, stateKey) : [el('div', { className: 'muted target', text: 'No rollout yet: every node runs what it started with.' })]),
      el('h4', { text: 'Lease holders' }),
      leaseList(group),
      el('div', {
        className: 'policy muted small',
        text:
          `Up to ${group.policy.effectiveMaxUnavailable} of ${group.nodes.length} out of service · lease ${duration(group.policy.leaseTtlMs)}` +
          (group.paused ? ' · group paused' : ''),
      }),
      options.admin && adminBar(group),
    );
  }

  function render(status: StatusResponse): void {
    const container = dom.byId('groups');
    if (status.groups.length === 0) {
      container.replaceChildren(
        el(
          'div',
          { className: 'card empty', 'data-testid': 'no-groups' },
          el('strong', { text: 'No agent has checked in yet.' }),
          el('div', { className: 'muted', text: 'Start baton agent on a host; its group appears here with its first heartbeat.' }),
        ),
      );
      return;
    }
    dom.replaceAll(container, orderGroups(status.groups).map(groupCard));
  }

  return { orderGroups, pageTitle, render };
}
