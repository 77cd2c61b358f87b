import { createActions } from './browser/actions.js';
import { createDom, createToast } from './browser/dom.js';
import { createEventsView } from './browser/events.js';
import { createFiguresView } from './browser/figures.js';
import { createFormat } from './browser/format.js';
import { createGroupsView } from './browser/groups.js';
import { createLiveConnection } from './browser/live.js';
import { startStatusPage, type BrowserModules } from './browser/main.js';
import { createNodesView } from './browser/nodes.js';

/**
 * The status page's script, inlined into the page (its CSP allows it by hash). The browser code in
 * ./browser/ is typed and linted TypeScript, sent as the source text of its functions: the
 * compiled `startStatusPage` is called with the compiled factories it builds the page from. No
 * bundler is needed: tsc (dist/) and vitest both emit a function as written, less its types. So
 * a factory must not reach outside itself: no module-level value, no imported value
 * (eslint.config.js forbids them there; client.test.ts checks the script for undeclared names).
 *
 * It renders everything with createElement and textContent: no value from an agent, a registry
 * or an operator ever goes through innerHTML.
 *
 * Stable selectors for browser tests (keep them when changing the page):
 * - page: `connection` (data-state live|connecting|down), `updated`, `sign-out`, `toast`,
 *   body[data-loaded="true"] after the first snapshot, body[data-admin].
 * - figures: `figure-success-rate`, `figure-rollback-time`, `figure-fleet-rollback-time`,
 *   `figure-updates-per-hour`, `figure-fleet`, each with a `<id>-value` child.
 * - groups: `group` [data-group, data-state none|in-progress|completed|halted|paused|aborted]
 *   holding `group-name`, `rollout-state`, `rollout-seq` [data-seq], `rollout-cause`
 *   [data-cause push|rollback|retry], `group-tag`, `group-digest`, `progress`
 *   [data-on-target, data-total, data-updating], `progress-label`, `halt` > `halt-node`,
 *   `halt-reason`, `leases` > `lease` [data-node-id] > `lease-node`, `lease-step`,
 *   `lease-time-left`; with the admin token `admin-actions` > `pause` | `resume`, `abort`,
 *   `rollback` (abort and rollback ask for a second click), `retry` (halted, aborted, rolled back).
 * - nodes: `node-row` [data-node-id, data-group] > `node-id`, `node-group`, `node-host`,
 *   `node-digest` [data-on-target], `node-health` [data-reason], `node-heartbeat`, `node-step`, `node-drain` (> `node-drained`
 *   while an operator drained it; with the admin token > `drain` | `undrain` [data-node-id, data-group]); after a node's
 *   row, `node-config-problem` [data-node-id, data-group] while its agent runs on its last known
 *   good config.
 * - events: `events` > `event` [data-seq, data-type] > `event-text`; `show-renewals`,
 *   `more-events`. Sign-in page: `sign-in`, `token-input`, `sign-in-button`, `sign-in-error`.
 */
const modules: BrowserModules = {
  createDom,
  createToast,
  createFormat,
  createFiguresView,
  createGroupsView,
  createNodesView,
  createEventsView,
  createActions,
  createLiveConnection,
};

const moduleSources = Object.entries(modules).map(([name, factory]) => `  ${name}: ${factory.toString()}`);

export const clientScript = `'use strict';
(${startStatusPage.toString()})({
${moduleSources.join(',\n')}
});
`;
