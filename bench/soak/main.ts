/**
 * Soak benchmark: one fleet, steady load through HAProxy for the whole run, and N consecutive
 * pushes alternating v2 and v1 (v1 is `latest` at start, so v2 first). Since rollouts are
 * identified by push, not by digest, every push must roll out, also a digest that was superseded
 * before. After each push the run waits until the fleet has converged on the pushed digest (every
 * node on it, healthy, no old container, the coordinator idle with no lease, HAProxy every server
 * UP), at most `--push-timeout` seconds; a push that does not converge is counted and the next
 * push follows.
 *
 * Measured in the one run:
 *   rollouts converged of pushed;
 *   failed requests of sent (non-2xx and socket errors), over the whole run;
 *   most nodes out of service at once (Docker's own events, as bench:rollout and the e2e tests);
 *   per push, push to converged (from the call that moves `latest` to convergence): median, p90, max;
 *   per host, leaked containers (any container but the service's) and images, at start and end;
 *   RSS (VmRSS) of each agent process and of the coordinator, at start and end (and after every
 *   push, in --json and on stderr);
 *   the coordinator's SQLite database (file and -wal), at start and end.
 *
 * The whole push phase is bounded: no push starts after pushes × 150 s, and a push's wait is cut
 * to what is left. The fleet is always torn down.
 *
 * Usage: npm run build && npm run bench:soak [-- --nodes 3 --pushes 20 --rate 40 --json out.json]
 * (from source with vite-node, as bench:rollout; `npm run build` is for the `baton` CLI the fleet
 * runs). Needs root (dockerd), docker-registry, busybox-static and haproxy, as the e2e tests do.
 */
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startFleet, type Fleet } from '../../tools/fleet/fleet.js';
import { FLEET_SERVICE } from '../../tools/fleet/fleet-names.js';
import { replayLeases } from '../../tools/fleet/lease-log.js';
import { sleep } from '../../tools/fleet/wait.js';
import { startLoad, summarize, type LoadResult, type RunningLoad } from '../../tools/fleet/load.js';

const { values } = parseArgs({
  // Through `npm run bench:soak -- ...` and vite-node a lone `--` may come first.
  args: process.argv.slice(2).filter((arg) => arg !== '--'),
  options: {
    nodes: { type: 'string', default: '3' },
    pushes: { type: 'string', default: '20' },
    rate: { type: 'string', default: '40' },
    'max-unavailable': { type: 'string', default: '1' },
    'push-timeout': { type: 'string', default: '120' },
    json: { type: 'string' },
  },
});
const nodeCount = Number(values.nodes);
const pushCount = Number(values.pushes);
const rate = Number(values.rate);
const maxUnavailable = Number(values['max-unavailable']);
const pushTimeoutMs = Number(values['push-timeout']) * 1_000;
for (const [name, value] of Object.entries({ nodes: nodeCount, pushes: pushCount, rate, 'max-unavailable': maxUnavailable, 'push-timeout': pushTimeoutMs })) {
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name}: a positive number, got ${String(value)}`);
}
const phaseBudgetMs = pushCount * 150_000;

interface HostSnapshot {
  node: string;
  /** Names of the containers other than the service's own. */
  leakedContainers: string[];
  /** Every image on the engine: its tags, or its repo digests, or its id. */
  images: string[];
}

interface Snapshot {
  atMs: number;
  hosts: HostSnapshot[];
  /** VmRSS in kB, by node id; null when the process is gone. */
  agentRssKb: Record<string, number | null>;
  coordinatorRssKb: number | null;
  dbBytes: number;
  walBytes: number;
}

interface PushRecord {
  index: number;
  variant: 'v1' | 'v2';
  digest: string;
  /** Wall clock, when the push call started. */
  pushedAtMs: number;
  /** How long `fleet.push` itself took (tag + docker push on the builder). */
  pushCallMs: number;
  converged: boolean;
  /** Push call start to convergence; undefined when it did not converge. */
  convergedMs: number | undefined;
  /** Grants of this push's digest between this push and the next one (from the coordinator's log). */
  grants: number;
  error?: string;
  agentRssKb: Record<string, number | null>;
  coordinatorRssKb: number | null;
}

function rssKb(pid: number | undefined): number | null {
  if (pid === undefined || pid <= 0) return null;
  try {
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : null;
  } catch {
    return null;
  }
}

function fileBytes(path: string): number {
  return existsSync(path) ? statSync(path).size : 0;
}

async function snapshot(fleet: Fleet): Promise<Snapshot> {
  const dataFile = join(fleet.dir, 'coordinator', 'baton.db');
  const hosts = await Promise.all(
    fleet.nodes.map(async (node): Promise<HostSnapshot> => {
      const [containers, images] = await Promise.all([node.docker.listContainers({ all: true }), node.docker.listImages()]);
      return {
        node: node.id,
        leakedContainers: containers
          .map((c) => (c.Names[0] ?? c.Id).replace(/^\//, ''))
          .filter((name) => name !== FLEET_SERVICE)
          .sort(),
        images: images.map((i) => (i.RepoTags?.filter((t) => t !== '<none>:<none>').join(',') || i.RepoDigests?.join(',') || i.Id)).sort(),
      };
    }),
  );
  return {
    atMs: Date.now(),
    hosts,
    agentRssKb: Object.fromEntries(fleet.nodes.map((node) => [node.id, rssKb(node.agent.pid)])),
    coordinatorRssKb: rssKb(fleet.coordinator.process.pid),
    dbBytes: fileBytes(dataFile),
    walBytes: fileBytes(`${dataFile}-wal`),
  };
}

function withTimeout<T>(what: string, promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

const log = (line: string): void => {
  process.stderr.write(`[soak ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
};
const mb = (kb: number | null): string => (kb === null ? 'gone' : (kb / 1_024).toFixed(1));
const seconds = (ms: number): string => (ms / 1_000).toFixed(1);

async function main(): Promise<void> {
  const fleet = await startFleet({ nodes: nodeCount, maxUnavailable, variants: ['v2'] });
  let load: RunningLoad | undefined;
  let loadResult: LoadResult | undefined;
  const pushes: PushRecord[] = [];
  let start: Snapshot;
  let end: Snapshot;
  let maxDown = 0;
  let maxLeases = 0;
  let windowMs = 0;
  let budgetExhausted = false;
  try {
    log(`fleet of ${nodeCount} up in ${JSON.stringify(fleet.timings)}`);
    start = await snapshot(fleet);
    const firstSeq = (await fleet.events()).at(-1)?.seq ?? 0;

    load = startLoad({ url: fleet.haproxy.url, ratePerSecond: rate, durationMs: phaseBudgetMs + 120_000 });
    const windowStartMs = Date.now();
    await sleep(2_000);
    const phaseStart = performance.now();
    const phaseDeadline = phaseStart + phaseBudgetMs;

    for (let i = 0; i < pushCount; i += 1) {
      const left = phaseDeadline - performance.now();
      if (left <= 0) {
        budgetExhausted = true;
        log(`time budget of ${seconds(phaseBudgetMs)} s spent: no more pushes after ${i}`);
        break;
      }
      const variant = i % 2 === 0 ? 'v2' : 'v1';
      const expected = fleet.digests[variant] as string;
      const pushedAtMs = Date.now();
      const t0 = performance.now();
      const record: PushRecord = {
        index: i + 1,
        variant,
        digest: expected,
        pushedAtMs,
        pushCallMs: 0,
        converged: false,
        convergedMs: undefined,
        grants: 0,
        agentRssKb: {},
        coordinatorRssKb: null,
      };
      try {
        const digest = await withTimeout(`push ${variant}`, fleet.push(variant), Math.min(60_000, left));
        record.digest = digest;
        record.pushCallMs = Math.round(performance.now() - t0);
        if (digest !== expected) log(`push ${i + 1}: pushed ${digest}, expected ${expected}`);
        await fleet.waitConverged(digest, Math.max(1_000, Math.min(pushTimeoutMs, phaseDeadline - performance.now())));
        record.converged = true;
        record.convergedMs = Math.round(performance.now() - t0);
      } catch (error) {
        record.error = (error instanceof Error ? error.message : String(error)).split('\n')[0]?.slice(0, 600);
      }
      record.agentRssKb = Object.fromEntries(fleet.nodes.map((node) => [node.id, rssKb(node.agent.pid)]));
      record.coordinatorRssKb = rssKb(fleet.coordinator.process.pid);
      pushes.push(record);
      const progress = load.progress();
      log(
        `push ${record.index}/${pushCount} ${variant} ${record.digest.slice(7, 19)}: ` +
          (record.converged ? `converged in ${seconds(record.convergedMs as number)} s` : `NOT converged (${record.error ?? '?'})`) +
          `; load ${progress.failed} failed of ${progress.sent}; RSS MB agents ${Object.values(record.agentRssKb).map(mb).join('/')}, ` +
          `coordinator ${mb(record.coordinatorRssKb)}`,
      );
    }

    await sleep(2_000);
    loadResult = await load.stop();
    load = undefined;
    const windowEndMs = Date.now();
    windowMs = windowEndMs - windowStartMs;
    maxDown = fleet.unavailability(windowStartMs, windowEndMs).maxDown;

    // Grants per push, from the coordinator's own log: the grants of the push's digest after it
    // and before the next push.
    const events = await fleet.events(firstSeq);
    maxLeases = replayLeases(events).maxHolders;
    for (const [k, record] of pushes.entries()) {
      const until = pushes[k + 1]?.pushedAtMs ?? Number.POSITIVE_INFINITY;
      record.grants = events.filter((e) => e.type === 'grant' && e.digest === record.digest && e.atMs >= record.pushedAtMs && e.atMs < until).length;
    }

    await sleep(1_000);
    end = await snapshot(fleet);
  } finally {
    if (load !== undefined) await load.stop().catch(() => undefined);
    await fleet.stop();
  }

  // ---- The table
  const converged = pushes.filter((p) => p.converged);
  const times = summarize(converged.map((p) => p.convergedMs as number));
  const perHost = (f: (h: HostSnapshot) => string | number): string =>
    fleet.nodes.map((node) => `${node.id} ${f(start.hosts.find((h) => h.node === node.id) as HostSnapshot)} → ${f(end.hosts.find((h) => h.node === node.id) as HostSnapshot)}`).join(', ');
  const rows: [string, string][] = [
    ['rollouts converged (of pushed)', `${converged.length} (${pushes.length})${budgetExhausted ? ` — time budget spent, ${pushCount} asked` : ''}`],
    ['failed requests (of sent)', `${loadResult.failed} (${loadResult.sent})`],
    ['most nodes out of service at once', String(maxDown)],
    ['push → converged, median / p90 / max (s)', converged.length === 0 ? '-' : `${seconds(times.p50)} / ${seconds(times.p90)} / ${seconds(times.max)}`],
    ['leaked containers per host, start → end', perHost((h) => h.leakedContainers.length)],
    ['images per host, start → end', perHost((h) => h.images.length)],
    ['agent RSS per host (MB), start → end', fleet.nodes.map((n) => `${n.id} ${mb(start.agentRssKb[n.id] ?? null)} → ${mb(end.agentRssKb[n.id] ?? null)}`).join(', ')],
    ['coordinator RSS (MB), start → end', `${mb(start.coordinatorRssKb)} → ${mb(end.coordinatorRssKb)}`],
    [
      'coordinator database, file + wal (KB), start → end',
      `${(start.dbBytes / 1_024).toFixed(0)} + ${(start.walBytes / 1_024).toFixed(0)} → ${(end.dbBytes / 1_024).toFixed(0)} + ${(end.walBytes / 1_024).toFixed(0)}`,
    ],
  ];
  const lines = ['| figure | value |', '|---|---|', ...rows.map(([k, v]) => `| ${k} | ${v} |`)];
  process.stdout.write(
    `\nSoak: ${pushes.length} pushes alternating v2 and v1 on ${nodeCount} nodes (maxUnavailable ${maxUnavailable}) under ${rate} requests/s ` +
      `through HAProxy (10% of them 1 s long), agents polling every 2 s; ${seconds(windowMs)} s of load; per-push wait ${seconds(pushTimeoutMs)} s.\n\n` +
      `${lines.join('\n')}\n`,
  );
  const leaked = end.hosts.filter((h) => h.leakedContainers.length > 0);
  if (leaked.length > 0) process.stdout.write(`\nleaked containers at end: ${leaked.map((h) => `${h.node}: ${h.leakedContainers.join(', ')}`).join('; ')}\n`);
  const notConverged = pushes.filter((p) => !p.converged);
  if (notConverged.length > 0) process.stdout.write(`\nnot converged: ${notConverged.map((p) => `#${p.index} ${p.variant}: ${p.error ?? '?'}`).join('\n')}\n`);
  if (loadResult.failed > 0) {
    process.stdout.write(`\nfirst failures:\n${loadResult.failures.slice(0, 10).map((f) => JSON.stringify(f)).join('\n')}\n`);
  }
  if (values.json) {
    writeFileSync(
      values.json,
      `${JSON.stringify(
        {
          nodes: nodeCount,
          maxUnavailable,
          rate,
          pushesAsked: pushCount,
          budgetExhausted,
          windowMs,
          maxDown,
          maxLeasesFromCoordinatorLog: maxLeases,
          convergedMs: times,
          pushes,
          start,
          end,
          load: { ...loadResult, versions: undefined },
        },
        null,
        2,
      )}\n`,
    );
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`bench:soak failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
