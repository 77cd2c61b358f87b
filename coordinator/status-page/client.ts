/**
 * The status page's script, sent inline as it is written here (no build step). It renders
 * everything with createElement and textContent: no value from an agent, a registry or an
 * operator ever goes through innerHTML. It is plain ES2017 without template literals, so
 * it can live in a String.raw literal; a unit test parses it.
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
export const clientScript = String.raw`
(function () {
  'use strict';

  var config = {};
  try { config = JSON.parse(document.getElementById('baton-config').textContent || '{}'); } catch (e) { config = {}; }
  var admin = config.admin === true;
  var MAX_EVENTS = 300;
  var shownEvents = 15;

  var model = { status: null, figures: null, events: new Map(), skewMs: 0, receivedAtMs: 0 };
  var confirming = new Map();
  var busy = new Set();
  var showRenewals = false;

  function byId(id) { return document.getElementById(id); }

  function el(tag, attrs) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (key) {
        var value = attrs[key];
        if (value === undefined || value === null) return;
        if (key === 'text') node.textContent = String(value);
        else if (key === 'className') node.className = value;
        else node.setAttribute(key, String(value));
      });
    }
    for (var i = 2; i < arguments.length; i++) {
      var child = arguments[i];
      if (child === null || child === undefined || child === false) continue;
      node.appendChild(typeof child === 'string' ? document.createTextNode(child) : child);
    }
    return node;
  }

  function replaceAll(parent, children) {
    var fragment = document.createDocumentFragment();
    children.forEach(function (child) { fragment.appendChild(child); });
    parent.replaceChildren(fragment);
  }

  function serverNow() { return Date.now() + model.skewMs; }

  function shortDigest(digest) {
    if (!digest) return '—';
    var parts = String(digest).split(':');
    return parts.length === 2 ? parts[0] + ':' + parts[1].slice(0, 12) : String(digest).slice(0, 19);
  }

  // "127.0.0.1:5000/team/app:v2" -> "app:v2"; digests are left out.
  function imageName(image) {
    if (!image) return null;
    var bare = String(image).split('@')[0];
    var slash = bare.lastIndexOf('/');
    var last = bare.slice(slash + 1);
    return last.indexOf(':') === -1 ? last + ':latest' : last;
  }

  function duration(ms) {
    if (ms === null || ms === undefined || !isFinite(ms)) return '—';
    var s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return s + ' s';
    var m = Math.floor(s / 60);
    if (m < 60) return s % 60 ? m + ' min ' + (s % 60) + ' s' : m + ' min';
    var h = Math.floor(m / 60);
    if (h < 48) return h + ' h ' + (m % 60) + ' min';
    return Math.floor(h / 24) + ' d ' + (h % 24) + ' h';
  }

  function ago(atMs) {
    var ms = serverNow() - atMs;
    if (ms < 1500) return 'just now';
    return duration(ms) + ' ago';
  }

  function clock(atMs) {
    var d = new Date(atMs);
    function two(n) { return n < 10 ? '0' + n : String(n); }
    return two(d.getHours()) + ':' + two(d.getMinutes()) + ':' + two(d.getSeconds());
  }

  var STATE_LABELS = {
    'in-progress': 'In progress', completed: 'Completed', halted: 'Halted', paused: 'Paused',
    aborted: 'Aborted', superseded: 'Superseded', none: 'No rollout'
  };

  // ---- Figures

  function figureTile(testid, label, value, detail) {
    return el('div', { className: 'tile', 'data-testid': testid },
      el('div', { className: 'tile-label', text: label }),
      el('div', { className: 'tile-value', 'data-testid': testid + '-value', text: value }),
      el('div', { className: 'tile-detail', text: detail }));
  }

  function renderFigures() {
    var f = model.figures;
    var s = model.status;
    if (!f || !s) return;
    var r = f.rollouts;
    var ended = r.succeeded + r.failed + r.aborted;
    var rate = r.successRate === null ? '—' : Math.round(r.successRate * 100) + '%';
    var rateDetail = ended === 0 ? 'no rollout has finished yet'
      : r.succeeded + ' of ' + ended + ' completed' + (r.failed ? ', ' + r.failed + ' halted' : '') + (r.aborted ? ', ' + r.aborted + ' aborted' : '');
    var rb = f.rollback;
    var rbValue = rb.medianMs === null ? '—' : duration(rb.medianMs);
    var rbDetail = rb.count === 0 ? 'no rollback so far'
      : 'median of ' + rb.count + ' · last ' + duration(rb.lastMs) + ' · max ' + duration(rb.maxMs);
    var fr = f.fleetRollback;
    var frValue = fr.medianMs === null ? '—' : duration(fr.medianMs);
    var frDetail = fr.count === 0 ? 'no fleet rollback so far'
      : 'median of ' + fr.count + ' · last ' + duration(fr.lastMs) + ' · max ' + duration(fr.maxMs);
    var u = f.updates;
    var perHour = u.perHourWhileRolling === null ? '—' : String(u.perHourWhileRolling >= 10 ? Math.round(u.perHourWhileRolling) : Math.round(u.perHourWhileRolling * 10) / 10);
    var uDetail = 'while rolling out · ' + u.lastHour + ' in the last hour, ' + u.last24h + ' in 24 h';
    var nodes = 0, healthy = 0, silent = 0;
    s.groups.forEach(function (g) {
      g.nodes.forEach(function (n) { nodes++; if (n.silent) silent++; else if (n.health === 'healthy') healthy++; });
    });
    var fleetDetail = s.groups.length + (s.groups.length === 1 ? ' group' : ' groups') + (silent ? ' · ' + silent + ' silent' : '');
    byId('figures').replaceChildren(
      figureTile('figure-success-rate', 'Rollout success rate', rate, rateDetail),
      figureTile('figure-rollback-time', 'Time to roll back', rbValue, rbDetail),
      figureTile('figure-fleet-rollback-time', 'Time to roll the fleet back', frValue, frDetail),
      figureTile('figure-updates-per-hour', 'Nodes updated per hour', perHour, uDetail),
      figureTile('figure-fleet', 'Healthy nodes', healthy + ' / ' + nodes, fleetDetail));
  }

  // ---- Groups

  function progressBar(rollout, stateKey) {
    var total = rollout ? rollout.progress.totalNodes : 0;
    var done = rollout ? rollout.progress.onTarget : 0;
    var updating = rollout ? Math.min(rollout.progress.updating, Math.max(0, total - done)) : 0;
    var bar = el('div', {
      className: 'bar bar-' + stateKey, role: 'progressbar', 'data-testid': 'progress',
      'aria-valuemin': 0, 'aria-valuemax': total, 'aria-valuenow': done,
      'data-on-target': done, 'data-total': total, 'data-updating': updating
    });
    var fill = el('div', { className: 'bar-fill' });
    fill.style.width = (total ? (100 * done / total) : 0) + '%';
    var pending = el('div', { className: 'bar-updating' });
    pending.style.width = (total ? (100 * updating / total) : 0) + '%';
    bar.appendChild(fill);
    bar.appendChild(pending);
    return bar;
  }

  function actionButton(group, action, label, extraClass) {
    var key = group + '\u0000' + action;
    var button = el('button', {
      type: 'button', className: 'btn ' + (extraClass || ''), 'data-testid': action, 'data-group': group,
      text: label
    });
    if (busy.has(key)) button.disabled = true;
    button.addEventListener('click', function () { onAction(group, action); });
    return button;
  }

  function isArmed(group, action) {
    return (confirming.get(group + '\u0000' + action) || 0) > Date.now();
  }

  function confirmedButton(group, action, label, armedLabel) {
    var armed = isArmed(group, action);
    return actionButton(group, action, armed ? armedLabel : label, armed ? 'btn-danger armed' : 'btn-quiet');
  }

  function adminBar(group) {
    var rollout = group.rollout;
    var open = rollout && (rollout.state === 'in-progress' || rollout.state === 'paused');
    var retryable = rollout && (rollout.state === 'halted' || rollout.state === 'aborted' || rollout.rolledBackFrom !== null);
    var bar = el('div', { className: 'actions', 'data-testid': 'admin-actions' });
    if (group.paused) bar.appendChild(actionButton(group.name, 'resume', 'Resume'));
    else bar.appendChild(actionButton(group.name, 'pause', 'Pause'));
    if (open) bar.appendChild(confirmedButton(group.name, 'abort', 'Abort', 'Click again to abort'));
    if (rollout) bar.appendChild(confirmedButton(group.name, 'rollback', 'Roll back', 'Click again to roll back'));
    if (retryable) bar.appendChild(actionButton(group.name, 'retry', 'Retry'));
    return bar;
  }

  function leaseList(group) {
    var list = el('ul', { className: 'leases', 'data-testid': 'leases' });
    var nodes = new Map();
    group.nodes.forEach(function (n) { nodes.set(n.nodeId, n); });
    group.leases.forEach(function (lease) {
      var node = nodes.get(lease.nodeId);
      list.appendChild(el('li', { className: 'lease', 'data-testid': 'lease', 'data-node-id': lease.nodeId },
        el('span', { className: 'dot dot-busy' }),
        el('span', { className: 'lease-node', 'data-testid': 'lease-node', text: lease.nodeId }),
        el('span', { className: 'chip', 'data-testid': 'lease-step', text: node ? node.step : '?' }),
        el('span', { className: 'lease-left muted', 'data-testid': 'lease-time-left', 'data-expires-at': lease.expiresAtMs,
          text: duration(lease.expiresAtMs - serverNow()) + ' left' })));
    });
    if (group.leases.length === 0) {
      list.appendChild(el('li', { className: 'muted lease-none', text: 'No node is out of service.' }));
    }
    return list;
  }

  function groupCard(group) {
    var rollout = group.rollout;
    var stateKey = rollout ? rollout.state : 'none';
    var card = el('article', { className: 'card group state-' + stateKey, 'data-testid': 'group', 'data-group': group.name, 'data-state': stateKey });
    var title = el('div', { className: 'card-head' },
      el('h3', { 'data-testid': 'group-name', text: group.name }),
      el('span', { className: 'badge badge-' + stateKey, 'data-testid': 'rollout-state', 'data-state': stateKey, text: STATE_LABELS[stateKey] || stateKey }));
    card.appendChild(title);

    if (rollout) {
      var name = imageName(rollout.image);
      var cause = rollout.cause === 'rollback'
        ? 'rollback' + (rollout.rolledBackFrom ? ' from ' + shortDigest(rollout.rolledBackFrom) : '')
        : rollout.cause === 'retry' ? 'retry' : 'push';
      card.appendChild(el('div', { className: 'target' },
        el('span', { className: 'muted', 'data-testid': 'rollout-seq', 'data-seq': rollout.seq, text: 'Rollout ' + rollout.seq + ' ' }),
        el('span', { className: 'chip', 'data-testid': 'rollout-cause', 'data-cause': rollout.cause, text: cause }),
        el('span', { className: 'muted', text: ' · target ' }),
        name ? el('span', { className: 'image-tag', 'data-testid': 'group-tag', text: name }) : null,
        el('code', { className: 'digest', 'data-testid': 'group-digest', title: rollout.targetDigest, text: shortDigest(rollout.targetDigest) })));
      var p = rollout.progress;
      card.appendChild(progressBar(rollout, stateKey));
      card.appendChild(el('div', { className: 'progress-label', 'data-testid': 'progress-label' },
        el('strong', { text: p.onTarget + ' of ' + p.totalNodes }),
        ' nodes on target' + (p.updating ? ' · ' + p.updating + ' updating' : '') +
        (rollout.state === 'completed' && rollout.endedAtMs ? ' · took ' + duration(rollout.endedAtMs - rollout.openedAtMs) : '')));
      if (rollout.state === 'halted') {
        card.appendChild(el('div', { className: 'alert', role: 'alert', 'data-testid': 'halt' },
          el('div', { className: 'alert-title' }, 'Halted by ',
            el('strong', { 'data-testid': 'halt-node', text: rollout.haltedByNodeId || 'unknown node' })),
          el('div', { className: 'alert-reason', 'data-testid': 'halt-reason', text: rollout.haltReason || 'no reason given' }),
          el('div', { className: 'muted small', text: 'The node rolled back. Push a fixed image to roll forward, or Retry after a fix elsewhere.' })));
      }
      if (rollout.state === 'aborted') {
        card.appendChild(el('div', { className: 'note', text: 'Aborted by an operator. Push a new image, or Retry, to roll out again.' }));
      }
    } else {
      card.appendChild(el('div', { className: 'muted target', text: 'No rollout yet: every node runs what it started with.' }));
    }

    card.appendChild(el('h4', { text: 'Lease holders' }));
    card.appendChild(leaseList(group));
    card.appendChild(el('div', { className: 'policy muted small',
      text: 'Up to ' + group.policy.effectiveMaxUnavailable + ' of ' + group.nodes.length + ' out of service · lease ' + duration(group.policy.leaseTtlMs) +
        (group.paused ? ' · group paused' : '') }));
    if (admin) card.appendChild(adminBar(group));
    return card;
  }

  function renderGroups() {
    var s = model.status;
    var container = byId('groups');
    if (s.groups.length === 0) {
      container.replaceChildren(el('div', { className: 'card empty', 'data-testid': 'no-groups' },
        el('strong', { text: 'No agent has checked in yet.' }),
        el('div', { className: 'muted', text: 'Start baton agent on a host; its group appears here with its first heartbeat.' })));
      return;
    }
    // What needs attention first: halted, paused, rolling out; then the rest by name.
    var rank = { halted: 0, paused: 1, 'in-progress': 2 };
    var ordered = s.groups.slice().sort(function (a, b) {
      var ra = a.rollout && a.rollout.state in rank ? rank[a.rollout.state] : 3;
      var rb = b.rollout && b.rollout.state in rank ? rank[b.rollout.state] : 3;
      return ra - rb || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
    });
    replaceAll(container, ordered.map(groupCard));
  }

  // ---- Nodes

  var HEALTH_CLASS = { healthy: 'ok', starting: 'info', draining: 'warn', unhealthy: 'bad', stopped: 'off', unknown: 'off' };

  // An operator's drain (baton drain): the chip, and for admins the button that drains or undrains.
  function drainControls(group, n) {
    var chip = n.drained ? el('span', { className: 'chip chip-warn', 'data-testid': 'node-drained', title: n.drained.reason || '',
      text: 'drained' + (n.drained.reason ? ': ' + n.drained.reason : '') }) : null;
    if (!admin) return [chip];
    var action = n.drained ? 'undrain' : 'drain';
    var button = el('button', { type: 'button', className: 'btn btn-small', 'data-testid': action, 'data-node-id': n.nodeId,
      'data-group': group, text: n.drained ? 'Undrain' : 'Drain' });
    if (busy.has(group + '\u0000' + n.nodeId + '\u0000drain')) button.disabled = true;
    button.addEventListener('click', function () { onNodeAction(group, n.nodeId, action); });
    return [chip, button];
  }

  function renderNodes() {
    var s = model.status;
    var body = byId('nodes-body');
    var rows = [];
    var many = s.groups.length > 1;
    byId('nodes').classList.toggle('one-group', !many);
    s.groups.forEach(function (g) {
      var target = g.rollout ? g.rollout.targetDigest : null;
      var holders = new Set(g.leases.map(function (l) { return l.nodeId; }));
      g.nodes.forEach(function (n) {
        var onTarget = target !== null && n.currentDigest === target;
        var healthKey = n.silent ? 'silent' : n.health;
        var rowClass = (holders.has(n.nodeId) ? 'holding' : '') + (n.configProblem ? ' has-config-problem' : '');
        var drain = drainControls(g.name, n);
        rows.push(el('tr', { 'data-testid': 'node-row', 'data-node-id': n.nodeId, 'data-group': g.name, className: rowClass.trim() },
          el('td', { 'data-testid': 'node-id', className: 'node-id', text: n.nodeId }),
          el('td', { 'data-testid': 'node-group', className: 'col-group', text: g.name }),
          el('td', { 'data-testid': 'node-host', className: 'muted', text: n.host }),
          el('td', { 'data-testid': 'node-digest', 'data-on-target': onTarget ? 'true' : 'false' },
            el('code', { className: 'digest', title: n.currentDigest || '', text: shortDigest(n.currentDigest) }),
            target ? el('span', { className: 'chip ' + (onTarget ? 'chip-ok' : 'chip-muted'), text: onTarget ? 'target' : 'previous' }) : null),
          el('td', { 'data-testid': 'node-health' },
            el('span', { className: 'health health-' + (n.silent ? 'bad' : HEALTH_CLASS[n.health] || 'off'), 'data-health': healthKey, 'data-reason': n.healthReason || '',
              text: n.silent ? 'silent (' + n.health + ')' : n.health + (n.healthReason ? ': ' + n.healthReason : '') })),
          el('td', { 'data-testid': 'node-heartbeat', className: 'muted', 'data-at': n.lastHeartbeatMs, text: ago(n.lastHeartbeatMs) }),
          el('td', { 'data-testid': 'node-step' }, el('span', { className: 'chip' + (n.step === 'idle' ? ' chip-muted' : ''), text: n.step })),
          el('td', { 'data-testid': 'node-drain' }, drain[0], drain[1])));
        // The agent runs on its last known good config: its config file is invalid (soft state from its heartbeat).
        if (n.configProblem) {
          rows.push(el('tr', { className: 'config-problem-row', 'data-testid': 'node-config-problem', 'data-node-id': n.nodeId, 'data-group': g.name },
            el('td', { colspan: 8 },
              el('span', { className: 'chip chip-bad', text: 'config invalid' }),
              el('span', { className: 'config-problem-text', text: n.configProblem }))));
        }
      });
    });
    if (rows.length === 0) rows.push(el('tr', {}, el('td', { colspan: 8, className: 'muted', text: 'No nodes yet.' })));
    replaceAll(body, rows);
  }

  // ---- Events

  var EVENT_CLASS = {
    halt: 'bad', abort: 'bad', expiry: 'warn', refusal: 'muted', pause: 'warn', resume: 'info',
    'rollout-completed': 'ok', 'rollout-opened': 'info', grant: 'info', release: 'ok', renew: 'muted',
    'rollout-superseded': 'muted', 'node-joined': 'info', 'node-forgotten': 'warn', 'registry-push': 'info',
    drain: 'warn', undrain: 'info'
  };

  // Full digests and rollout ids drown a one-line message; the full text stays in the title.
  function compact(text) {
    return String(text)
      .replace(/\b(sha256:[a-f0-9]{12})[a-f0-9]{52}\b/g, '$1')
      .replace(/\b(sha512:[a-f0-9]{12})[a-f0-9]{116}\b/g, '$1')
      .replace(/\b([0-9a-f]{8})-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/g, '$1');
  }

  function eventText(e) {
    if (e.message) return compact(e.message);
    var parts = [];
    if (e.nodeId) parts.push('node ' + e.nodeId);
    if (e.digest) parts.push(shortDigest(e.digest));
    if (e.outcome) parts.push(e.outcome);
    if (e.reason) parts.push(e.reason);
    return parts.join(' · ');
  }

  function addEvent(e) {
    model.events.set(e.seq, e);
    if (model.events.size > MAX_EVENTS) {
      var keys = Array.from(model.events.keys()).sort(function (a, b) { return a - b; });
      for (var i = 0; i < keys.length - MAX_EVENTS; i++) model.events.delete(keys[i]);
    }
  }

  function renderEvents() {
    var list = byId('events-list');
    var events = Array.from(model.events.values())
      .filter(function (e) { return showRenewals || e.type !== 'renew'; })
      .sort(function (a, b) { return b.seq - a.seq; });
    var matching = events.length;
    events = events.slice(0, shownEvents);
    var items = events.map(function (e) {
      var kind = e.type === 'release' && e.outcome === 'failed' ? 'bad' : (EVENT_CLASS[e.type] || 'muted');
      return el('li', { className: 'event', 'data-testid': 'event', 'data-seq': e.seq, 'data-type': e.type },
        el('time', { className: 'muted small', text: clock(e.atMs), title: new Date(e.atMs).toISOString() }),
        el('span', { className: 'chip chip-' + kind, text: e.type + (e.outcome ? ' · ' + e.outcome : '') }),
        el('span', { className: 'event-group muted', text: e.group }),
        el('span', { className: 'event-text', 'data-testid': 'event-text', title: e.message || '', text: eventText(e) }));
    });
    if (items.length === 0) items.push(el('li', { className: 'muted', text: 'No events yet.' }));
    replaceAll(list, items);
    var more = byId('more-events');
    more.hidden = !(matching > shownEvents);
    more.textContent = 'Show ' + Math.min(50, matching - shownEvents) + ' more';
  }

  // ---- Whole page

  function renderTitle() {
    var s = model.status;
    var halted = s.groups.filter(function (g) { return g.rollout && g.rollout.state === 'halted'; }).length;
    var rolling = s.groups.filter(function (g) { return g.rollout && g.rollout.state === 'in-progress'; });
    var title = 'Baton';
    if (halted) title = 'Halted · Baton';
    else if (rolling.length) title = rolling.map(function (g) { return g.name + ' ' + g.rollout.progress.onTarget + '/' + g.rollout.progress.totalNodes; }).join(', ') + ' · Baton';
    document.title = title;
  }

  function render() {
    if (!model.status) return;
    renderFigures();
    renderGroups();
    renderNodes();
    renderEvents();
    renderTitle();
    document.body.setAttribute('data-loaded', 'true');
  }

  function applySnapshot(snapshot) {
    model.status = snapshot.status;
    model.figures = snapshot.figures;
    model.receivedAtMs = Date.now();
    model.skewMs = snapshot.status.serverTimeMs - model.receivedAtMs;
    snapshot.status.events.forEach(addEvent);
    render();
    byId('updated').textContent = 'updated ' + clock(serverNow());
  }

  // Counters between snapshots: time left on leases, time since heartbeats.
  function tick() {
    var now = serverNow();
    document.querySelectorAll('[data-expires-at]').forEach(function (node) {
      node.textContent = duration(Number(node.getAttribute('data-expires-at')) - now) + ' left';
    });
    document.querySelectorAll('[data-at]').forEach(function (node) {
      node.textContent = ago(Number(node.getAttribute('data-at')));
    });
    confirming.forEach(function (until, key) {
      if (until <= Date.now()) { confirming.delete(key); if (model.status) renderGroups(); }
    });
  }

  // ---- Live connection

  function setConnection(state, text) {
    var badge = byId('connection');
    badge.setAttribute('data-state', state);
    badge.replaceChildren(el('span', { className: 'dot' }), document.createTextNode(text));
  }

  var source = null;
  function connect() {
    if (source) source.close();
    setConnection('connecting', 'Connecting…');
    source = new EventSource('/v1/events/stream');
    source.addEventListener('open', function () { setConnection('live', 'Live'); });
    source.addEventListener('snapshot', function (message) {
      setConnection('live', 'Live');
      applySnapshot(JSON.parse(message.data));
    });
    source.addEventListener('events', function (message) {
      JSON.parse(message.data).events.forEach(addEvent);
      renderEvents();
    });
    source.addEventListener('error', function () {
      if (source.readyState === EventSource.CLOSED) {
        setConnection('down', 'Disconnected');
        // Closed for good: maybe the session ended. Ask once, then try again.
        fetch('/v1/status', { credentials: 'same-origin' }).then(function (answer) {
          if (answer.status === 401) { setConnection('down', 'Signed out'); showToast('Your session has ended: reload the page to sign in again.', true); }
          else setTimeout(connect, 3000);
        }, function () { setTimeout(connect, 3000); });
      } else {
        setConnection('connecting', 'Reconnecting…');
      }
    });
  }

  // ---- Admin actions

  var toastTimer = null;
  function showToast(text, bad) {
    var toast = byId('toast');
    toast.textContent = text;
    toast.className = 'toast show' + (bad ? ' toast-bad' : '');
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { toast.className = 'toast'; }, 5000);
  }

  function onAction(group, action) {
    if (action === 'abort' || action === 'rollback') {
      var confirmKey = group + '\u0000' + action;
      if (!isArmed(group, action)) { confirming.set(confirmKey, Date.now() + 4000); renderGroups(); return; }
      confirming.delete(confirmKey);
    }
    var key = group + '\u0000' + action;
    busy.add(key);
    renderGroups();
    fetch('/v1/groups/' + encodeURIComponent(group) + '/' + action, {
      method: 'POST', credentials: 'same-origin',
      headers: { 'content-type': 'application/json', 'x-baton-csrf': '1' },
      body: JSON.stringify({ reason: action + ' from the status page' })
    }).then(function (answer) {
      return answer.json().then(function (body) {
        if (answer.ok) showToast('Group ' + group + ': ' + action + ' done.', false);
        else showToast('Group ' + group + ': ' + action + ' failed: ' + (body && body.message ? body.message : answer.status), true);
      });
    }, function (error) {
      showToast('Group ' + group + ': ' + action + ' failed: ' + error, true);
    }).then(function () {
      busy.delete(key);
      if (model.status) renderGroups();
    });
  }

  function onNodeAction(group, nodeId, action) {
    var key = group + '\u0000' + nodeId + '\u0000drain';
    busy.add(key);
    renderNodes();
    var body = action === 'drain' ? { group: group, reason: 'drained from the status page' } : { group: group };
    fetch('/v1/nodes/' + encodeURIComponent(nodeId) + '/' + action, {
      method: 'POST', credentials: 'same-origin',
      headers: { 'content-type': 'application/json', 'x-baton-csrf': '1' },
      body: JSON.stringify(body)
    }).then(function (answer) {
      return answer.json().then(function (result) {
        if (answer.ok) showToast('Node ' + nodeId + ': ' + action + ' done.', false);
        else showToast('Node ' + nodeId + ': ' + action + ' refused: ' + (result && result.message ? result.message : answer.status), true);
      });
    }, function (error) {
      showToast('Node ' + nodeId + ': ' + action + ' failed: ' + error, true);
    }).then(function () {
      busy.delete(key);
      if (model.status) renderNodes();
    });
  }

  byId('show-renewals').addEventListener('change', function (event) {
    showRenewals = event.target.checked;
    renderEvents();
  });

  byId('more-events').addEventListener('click', function () {
    shownEvents += 50;
    renderEvents();
  });

  setInterval(tick, 1000);
  connect();
})();
`;
