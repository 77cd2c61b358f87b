import { createHash } from 'node:crypto';
import { clientScript } from './client.js';

/**
 * The status page: one self-contained HTML document (inline CSS and script, no external
 * asset), filled in by the script from GET /v1/events/stream. The server writes no fleet
 * data into the HTML, so there is nothing to escape here but the sign-in page's message.
 */

const styles = `
:root {
  --bg: #f4f6f8; --card: #ffffff; --border: #e2e6eb; --text: #1f2a37; --muted: #6b7785;
  --accent: #3a6ea5; --accent-soft: #dbe7f3; --ok: #2f7d5b; --ok-soft: #dcefe5; --warn: #a86a12; --warn-soft: #f6ead3;
  --bad: #b4423c; --bad-soft: #f7e0de; --off: #7b8794; --off-soft: #eceff2; --track: #e7eaee; --hold: #f1f6fb;
  --mono: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace;
  color-scheme: light dark;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #14181d; --card: #1c2128; --border: #2c333c; --text: #e4e8ec; --muted: #98a3ae;
    --accent: #7aa7d6; --accent-soft: #22344a; --ok: #6cc29a; --ok-soft: #1d3a2e; --warn: #dcae62; --warn-soft: #3d3220;
    --bad: #ec8a83; --bad-soft: #47272a; --off: #97a1ab; --off-soft: #2a3038; --track: #2a3038; --hold: #1f2933;
  }
}
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; background: var(--bg); color: var(--text); font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
header.top { display: flex; align-items: center; gap: 12px; padding: 14px 24px; background: var(--card); border-bottom: 1px solid var(--border); position: sticky; top: 0; z-index: 2; }
.brand { font-weight: 650; font-size: 18px; letter-spacing: .2px; }
.brand small { font-weight: 400; color: var(--muted); margin-left: 8px; font-size: 14px; }
.spacer { flex: 1; }
.conn { display: inline-flex; align-items: center; gap: 6px; font-size: 13px; color: var(--muted); }
.conn .dot { background: var(--off); }
.conn[data-state="live"] .dot { background: var(--ok); box-shadow: 0 0 0 3px var(--ok-soft); }
.conn[data-state="down"] .dot { background: var(--bad); }
.conn[data-state="connecting"] .dot { background: var(--warn); }
.top a { color: var(--muted); font-size: 13px; }
main { max-width: 1200px; margin: 0 auto; padding: 20px 24px 40px; }
h2 { font-size: 13px; text-transform: uppercase; letter-spacing: .08em; color: var(--muted); font-weight: 600; margin: 28px 0 10px; }
h3 { margin: 0; font-size: 17px; font-weight: 620; overflow-wrap: anywhere; }
h4 { margin: 16px 0 6px; font-size: 12px; text-transform: uppercase; letter-spacing: .07em; color: var(--muted); font-weight: 600; }
.muted { color: var(--muted); }
.small { font-size: 13px; }
code, .digest { font-family: var(--mono); font-size: 13px; }
.tiles { display: grid; grid-template-columns: repeat(auto-fit, minmax(210px, 1fr)); gap: 12px; }
.tile { background: var(--card); border: 1px solid var(--border); border-radius: 10px; padding: 14px 16px; }
.tile-label { font-size: 13px; color: var(--muted); }
.tile-value { font-size: 28px; font-weight: 620; margin: 2px 0; font-variant-numeric: tabular-nums; }
.tile-detail { font-size: 12.5px; color: var(--muted); }
.groups { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 14px; }
.card { background: var(--card); border: 1px solid var(--border); border-radius: 10px; padding: 16px 18px; }
.card.empty { padding: 22px; }
.group { display: flex; flex-direction: column; }
.group .policy { margin-bottom: 14px; }
.group .actions { margin-top: auto; }
.more { display: block; margin: 10px auto 0; }
.more[hidden] { display: none; }
.group.state-halted { border-color: var(--bad); box-shadow: inset 4px 0 0 var(--bad); }
.group.state-paused { box-shadow: inset 4px 0 0 var(--warn); }
.group.state-in-progress { box-shadow: inset 4px 0 0 var(--accent); }
.card-head { display: flex; align-items: center; justify-content: space-between; gap: 10px; }
.badge { font-size: 12px; font-weight: 600; padding: 3px 10px; border-radius: 999px; white-space: nowrap; background: var(--off-soft); color: var(--off); }
.badge-in-progress { background: var(--accent-soft); color: var(--accent); }
.badge-completed { background: var(--ok-soft); color: var(--ok); }
.badge-halted { background: var(--bad-soft); color: var(--bad); }
.badge-paused { background: var(--warn-soft); color: var(--warn); }
.target { margin: 10px 0 10px; display: flex; flex-wrap: wrap; align-items: baseline; gap: 8px; }
.image-tag { font-weight: 600; overflow-wrap: anywhere; }
.bar { position: relative; display: flex; height: 10px; border-radius: 999px; background: var(--track); overflow: hidden; }
.bar-fill { background: var(--accent); transition: width .5s ease; }
.bar-updating { background: var(--accent); opacity: .35; transition: width .5s ease; }
.bar-completed .bar-fill { background: var(--ok); }
.bar-halted .bar-fill { background: var(--bad); }
.bar-paused .bar-fill, .bar-paused .bar-updating { background: var(--warn); }
.bar-aborted .bar-fill, .bar-superseded .bar-fill { background: var(--off); }
.progress-label { margin-top: 6px; font-size: 13.5px; color: var(--muted); }
.progress-label strong { color: var(--text); font-variant-numeric: tabular-nums; }
.alert { margin-top: 12px; background: var(--bad-soft); border-radius: 8px; padding: 10px 12px; }
.alert-title { color: var(--bad); }
.alert-title strong { overflow-wrap: anywhere; }
.alert-reason { margin: 2px 0 4px; overflow-wrap: anywhere; }
.note { margin-top: 12px; background: var(--off-soft); border-radius: 8px; padding: 8px 12px; font-size: 13.5px; }
ul.leases { list-style: none; margin: 0; padding: 0; }
.lease { display: flex; align-items: center; gap: 8px; padding: 4px 0; flex-wrap: wrap; }
.lease-node { font-weight: 560; overflow-wrap: anywhere; }
.lease-left { margin-left: auto; font-variant-numeric: tabular-nums; font-size: 13px; }
.lease-none { font-size: 13.5px; }
.dot { display: inline-block; width: 8px; height: 8px; border-radius: 50%; background: var(--off); flex: none; }
.dot-busy { background: var(--accent); box-shadow: 0 0 0 3px var(--accent-soft); }
.policy { margin-top: 12px; }
.actions { display: flex; gap: 8px; padding-top: 12px; border-top: 1px solid var(--border); }
.btn { font: inherit; font-size: 13.5px; padding: 6px 14px; border-radius: 7px; border: 1px solid var(--border); background: var(--card); color: var(--text); cursor: pointer; }
.btn:hover { border-color: var(--accent); }
.btn:disabled { opacity: .5; cursor: default; }
.btn-quiet { color: var(--bad); }
.btn-small { padding: 2px 8px; font-size: 12px; margin-left: 6px; }
.btn-danger { background: var(--bad); border-color: var(--bad); color: #fff; }
.chip { display: inline-block; font-size: 12px; padding: 1px 8px; border-radius: 999px; background: var(--accent-soft); color: var(--accent); white-space: nowrap; }
.chip-muted { background: var(--off-soft); color: var(--muted); }
.chip-ok { background: var(--ok-soft); color: var(--ok); }
.chip-info { background: var(--accent-soft); color: var(--accent); }
.chip-warn { background: var(--warn-soft); color: var(--warn); }
.chip-bad { background: var(--bad-soft); color: var(--bad); }
.table-wrap { background: var(--card); border: 1px solid var(--border); border-radius: 10px; overflow-x: auto; }
table { width: 100%; border-collapse: collapse; font-size: 14px; }
th { text-align: left; font-weight: 600; font-size: 12px; text-transform: uppercase; letter-spacing: .06em; color: var(--muted); padding: 10px 14px; border-bottom: 1px solid var(--border); white-space: nowrap; }
td { padding: 9px 14px; border-bottom: 1px solid var(--border); vertical-align: middle; }
tbody tr:last-child td { border-bottom: none; }
tr.holding td { background: var(--hold); }
tr.has-config-problem td { border-bottom: none; }
.config-problem-row td { padding-top: 0; font-size: 13px; }
.config-problem-text { margin-left: 8px; color: var(--bad); overflow-wrap: anywhere; }
td .chip { margin-left: 6px; }
td:first-child .chip, td[data-testid="node-step"] .chip { margin-left: 0; }
.node-id { font-weight: 560; overflow-wrap: anywhere; min-width: 8em; }
.one-group .col-group { display: none; }
.health { display: inline-flex; align-items: center; gap: 6px; white-space: nowrap; }
.health::before { content: ""; width: 8px; height: 8px; border-radius: 50%; background: currentColor; }
.health-ok { color: var(--ok); } .health-info { color: var(--accent); } .health-warn { color: var(--warn); }
.health-bad { color: var(--bad); } .health-off { color: var(--off); }
.events-head { display: flex; align-items: baseline; justify-content: space-between; }
.events-head label { font-size: 13px; color: var(--muted); }
ul.events { list-style: none; margin: 0; padding: 4px 0; background: var(--card); border: 1px solid var(--border); border-radius: 10px; }
.event { display: grid; grid-template-columns: 70px auto auto 1fr; gap: 10px; align-items: baseline; padding: 6px 14px; font-size: 14px; }
.event + .event { border-top: 1px solid var(--border); }
.event-text { overflow-wrap: anywhere; }
.event-group { font-size: 13px; }
.toast { position: fixed; left: 50%; bottom: 20px; transform: translateX(-50%) translateY(20px); opacity: 0; pointer-events: none; background: var(--text); color: var(--bg); padding: 10px 16px; border-radius: 8px; font-size: 14px; transition: all .2s ease; max-width: calc(100% - 32px); }
.toast.show { opacity: 1; transform: translateX(-50%); }
.toast-bad { background: var(--bad); color: #fff; }
.signin { max-width: 380px; margin: 12vh auto; }
.signin form { display: flex; flex-direction: column; gap: 10px; margin-top: 14px; }
.signin input { font: inherit; padding: 8px 10px; border: 1px solid var(--border); border-radius: 7px; background: var(--card); color: var(--text); }
.signin .error { color: var(--bad); }
footer { color: var(--muted); font-size: 12.5px; text-align: center; padding: 10px 0 30px; }
@media (max-width: 640px) {
  header.top { padding: 12px 14px; }
  .brand small { display: none; }
  main { padding: 12px 12px 30px; }
  .groups { grid-template-columns: 1fr; }
  .tiles { grid-template-columns: 1fr 1fr; gap: 8px; }
  .tile { padding: 10px 12px; }
  .tile-value { font-size: 22px; }
  .event { grid-template-columns: 62px 1fr; }
  .event-group { display: none; }
  .event-text { grid-column: 1 / -1; }
  th, td { padding: 8px 10px; }
}
`;

const sha256 = (text: string): string => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;
const styleHash = sha256(styles);
const scriptHash = sha256(clientScript);

/** Nothing loads from anywhere but this origin; only the page's own script and styles run. */
export const statusPageCsp = [
  "default-src 'none'",
  `script-src ${scriptHash}`,
  `style-src ${styleHash}`,
  "connect-src 'self'",
  'img-src data:',
  "form-action 'self'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join('; ');

const favicon =
  "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'%3E%3Crect x='1' y='7' width='14' height='2.4' rx='1.2' transform='rotate(-35 8 8)' fill='%233a6ea5'/%3E%3C/svg%3E";

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}

function head(title: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${escapeHtml(title)}</title>
<link rel="icon" href="${favicon}">
<style>${styles}</style>
</head>`;
}

export function renderStatusPage(options: { admin: boolean; signedIn: boolean; version: string }): string {
  // Only booleans go into the page's config; `<` cannot appear, so the JSON cannot end the script element.
  const config = JSON.stringify({ admin: options.admin }).replace(/</g, '\\u003c');
  return `${head('Baton')}
<body data-admin="${options.admin ? 'true' : 'false'}">
<header class="top">
  <div class="brand">Baton<small>rollout status</small></div>
  <div class="spacer"></div>
  <span class="muted small" id="updated" data-testid="updated"></span>
  <span class="conn" id="connection" data-testid="connection" data-state="connecting"><span class="dot"></span>Connecting…</span>
  ${options.signedIn ? '<a href="/?signout=1" data-testid="sign-out">Sign out</a>' : ''}
</header>
<main>
  <noscript><p class="card">This page needs JavaScript for its live view. The same data is at <code>/v1/status</code>.</p></noscript>
  <section aria-label="Deployment figures"><h2>Deployments</h2><div class="tiles" id="figures" data-testid="figures"></div></section>
  <section aria-label="Groups"><h2>Groups</h2><div class="groups" id="groups" data-testid="groups"></div></section>
  <section aria-label="Nodes"><h2>Nodes</h2>
    <div class="table-wrap" id="nodes" data-testid="nodes">
      <table>
        <thead><tr><th>Node</th><th class="col-group">Group</th><th>Host</th><th>Digest</th><th>Health</th><th>Last heartbeat</th><th>Step</th><th>Drain</th></tr></thead>
        <tbody id="nodes-body"></tbody>
      </table>
    </div>
  </section>
  <section aria-label="Recent events">
    <div class="events-head"><h2>Recent events</h2><label><input type="checkbox" id="show-renewals" data-testid="show-renewals"> show renewals</label></div>
    <ul class="events" id="events-list" data-testid="events"></ul>
    <button class="btn more" type="button" id="more-events" data-testid="more-events" hidden>Show more</button>
  </section>
</main>
<footer>Baton ${escapeHtml(options.version)} · live over server-sent events · JSON at /v1/status and /v1/figures · Prometheus at /metrics</footer>
<div class="toast" id="toast" data-testid="toast" role="status" aria-live="polite"></div>
<script id="baton-config" type="application/json">${config}</script>
<script>${clientScript}</script>
</body>
</html>
`;
}

/** Asks for a token; the form sends it once as ?token=, and the answer sets the session cookie. */
export function renderSignInPage(options: { message?: string }): string {
  return `${head('Sign in · Baton')}
<body>
<main>
  <div class="card signin" data-testid="sign-in">
    <div class="brand">Baton</div>
    <p class="muted">This coordinator needs a token to show its status. Use the admin token to pause, resume or abort rollouts from the page.</p>
    ${options.message ? `<p class="error" data-testid="sign-in-error">${escapeHtml(options.message)}</p>` : ''}
    <form method="get" action="/">
      <input type="password" name="token" autocomplete="current-password" placeholder="Token" aria-label="Token" required data-testid="token-input">
      <button class="btn" type="submit" data-testid="sign-in-button">Sign in</button>
    </form>
  </div>
</main>
</body>
</html>
`;
}
