/// <reference lib="dom" />
import type { createActions } from './actions.js';
import type { createDom, createToast } from './dom.js';
import type { createEventsView } from './events.js';
import type { createFiguresView } from './figures.js';
import type { createFormat } from './format.js';
import type { createGroupsView } from './groups.js';
import type { createLiveConnection } from './live.js';
import type { createNodesView } from './nodes.js';
import type { PageModel, StreamSnapshot } from './types.js';

/** The factories the page is built from, handed to startStatusPage as values (see ../client.ts). */
export interface BrowserModules {
  createDom: typeof createDom;
  createToast: typeof createToast;
  createFormat: typeof createFormat;
  createFiguresView: typeof createFiguresView;
  createGroupsView: typeof createGroupsView;
  createNodesView: typeof createNodesView;
  createEventsView: typeof createEventsView;
  createActions: typeof createActions;
  createLiveConnection: typeof createLiveConnection;
}

/**
 * The status page's script: reads the page's config island, renders every snapshot from the live
 * stream, and counts down leases and heartbeats between snapshots (browser code, see dom.ts).
 */
export function startStatusPage(modules: BrowserModules): void {
  const nowMs = () => Date.now();
  const model: PageModel = { status: null, figures: null, skewMs: 0 };
  const serverNowMs = () => nowMs() + model.skewMs;

  const dom = modules.createDom(document);
  let config: unknown = {};
  try {
    config = JSON.parse(dom.byId('baton-config').textContent || '{}');
  } catch {
    config = {};
  }
  const admin = typeof config === 'object' && config !== null && 'admin' in config && config.admin === true;

  const format = modules.createFormat();
  const showToast = modules.createToast(dom);
  const rerenderGroups = () => {
    if (model.status) groups.render(model.status);
  };
  const rerenderNodes = () => {
    if (model.status) nodes.render(model.status);
  };
  const actions = modules.createActions({ nowMs, showToast, rerenderGroups, rerenderNodes });
  const figures = modules.createFiguresView(dom, format);
  const groups = modules.createGroupsView(dom, format, { admin, serverNowMs, controls: actions.groups });
  const nodes = modules.createNodesView(dom, format, { admin, serverNowMs, controls: actions.nodes });
  const events = modules.createEventsView(dom, format, { maxEvents: 300 });

  function applySnapshot(snapshot: StreamSnapshot): void {
    const { status } = snapshot;
    model.status = status;
    model.figures = snapshot.figures;
    model.skewMs = status.serverTimeMs - nowMs();
    status.events.forEach(events.add);
    figures.render(status, snapshot.figures);
    groups.render(status);
    nodes.render(status);
    events.render();
    document.title = groups.pageTitle(status);
    document.body.setAttribute('data-loaded', 'true');
    dom.byId('updated').textContent = `updated ${format.timeOfDay(serverNowMs())}`;
  }

  // Counters between snapshots: time left on leases, time since heartbeats.
  function tick(): void {
    const now = serverNowMs();
    document.querySelectorAll('[data-expires-at]').forEach((node) => {
      node.textContent = `${format.duration(Number(node.getAttribute('data-expires-at')) - now)} left`;
    });
    document.querySelectorAll('[data-at]').forEach((node) => {
      node.textContent = format.ago(Number(node.getAttribute('data-at')), now);
    });
    if (actions.expireConfirmations()) rerenderGroups();
  }

  const live = modules.createLiveConnection(dom, {
    showToast,
    onSnapshot: applySnapshot,
    onEvents: (message) => {
      message.events.forEach(events.add);
      events.render();
    },
  });

  dom.byId('show-renewals').addEventListener('change', (event) => {
    events.setShowRenewals(event.target instanceof HTMLInputElement && event.target.checked);
  });
  dom.byId('more-events').addEventListener('click', () => events.showMore());

  setInterval(tick, 1000);
  live.connect();
}
