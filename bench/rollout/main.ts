/**
 * Rollout benchmark: one fleet, the same steady load through HAProxy, three ways to roll a new
 * image out, side by side.
 *
 *   all at once, no drain     a deploy script: on every host in parallel, `docker stop` (SIGTERM,
 *                             the app's own graceful stop), rm, create and start the new image;
 *   one at a time, no drain   the same script host after host, moving on as soon as the new
 *                             container runs (not health-gated);
 *   Baton                     `docker push`: the agents roll out one at a time, drained through
 *                             their readiness endpoints, health-gated, under leases.
 *
 * The two scripted policies run against the same engines, with the same container spec (the
 * agent's own `containerSpecFor` and Docker runtime), after the agents have been stopped; their
 * HAProxy checks the app's own health endpoint (`/cgi-bin/health`), as a balancer without Baton
 * would, with the same strict settings (retries 0, no redispatch, inter 250 ms, fall 2, rise 2).
 * Baton's HAProxy checks the agents' readiness endpoints. Images are pulled before the scripted
 * policies start (Baton pre-pulls while the old container serves, so both pull off the clock).
 *
 * Measured per policy, over the rollout window (2 s before the push or script start, to 2 s after
 * convergence): failed requests (non-2xx and socket errors), requests served, p99 latency of all
 * requests, push (or script start) to converged (every node on the new digest, healthy, HAProxy
 * every server UP), most nodes down at once and the sum of per-node down times (Docker's own
 * events: from the old container's stop to the new one's first healthy report), detection (push to
 * the first grant for Baton; 0 for a script), and the sum of per-node update times (Baton: each
 * lease, grant to release, which covers drain, stop, start, health and readmit; a script: the stop
 * to the new container's first healthy report). Converged over (detection + that sum) is the cost
 * of doing one node after another through a coordinator: 1.00x would be no gap between nodes.
 *
 * Usage: npm run build && npm run bench:rollout [-- --nodes 3 --rate 40 --json out.json]
 * (run from source with vite-node, which vitest ships: the test helpers find the built `baton` CLI
 * and the test app's scripts relative to their source files; `npm run build` is for the CLI.)
 * Needs root (dockerd), docker-registry, busybox-static and haproxy, as the e2e tests do.
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createDockerRuntime } from '../../agent/docker/runtime.js';
import { containerSpecFor } from '../../agent/update/containers.js';
import { serviceSchema } from '../../shared/config/agent.js';
import { silentLogger } from '../../shared/logger.js';
import type { AppContainerEvent } from '../../tools/fleet/docker-events.js';
import { startFleet, type Fleet } from '../../tools/fleet/fleet.js';
import { startAppCheckHaproxy } from '../../tools/fleet/fleet-hosts.js';
import { FLEET_SERVICE } from '../../tools/fleet/fleet-names.js';
import type { RunningHaproxy } from '../../tools/fleet/haproxy.js';
import { testAppImage, type TestAppVariant } from '../../tools/fleet/images.js';
import { startLoad, type LoadResult } from '../../tools/fleet/load.js';
import { sleep } from '../../tools/fleet/wait.js';

interface PolicyResult {
  policy: string;
  failed: number;
  sent: number;
  served: number;
  p99Ms: number;
  p99FastMs: number;
  convergedMs: number;
  maxDown: number;
  downSumMs: number;
  updateSumMs: number;
  /** Push (or script start) to the first node's update start. */
  detectionMs: number;
  load: LoadResult;
}

const { values } = parseArgs({
  // Through `npm run bench:rollout -- ...` and vite-node a lone `--` may come first.
  args: process.argv.slice(2).filter((arg) => arg !== '--'),
  options: {
    nodes: { type: 'string', default: '3' },
    rate: { type: 'string', default: '40' },
    json: { type: 'string' },
  },
});
const nodeCount = Number(values.nodes);
const rate = Number(values.rate);

async function waitFor(what: string, probe: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (await probe().catch(() => false)) return;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function converged(fleet: Fleet, haproxy: RunningHaproxy, digest: string): Promise<boolean> {
  const states = await fleet.containers();
  const servers = await haproxy.serverStates();
  return (
    states.every((s) => s.digest === digest && s.running && s.health === 'healthy' && !s.hasOld) &&
    servers.length === fleet.nodes.length &&
    servers.every((s) => s.status === 'UP')
  );
}

/** Per node: the first `health_status: healthy` of a container with `digest` after `sinceMs`. */
function healthyAt(events: AppContainerEvent[], node: string, digest: string, sinceMs: number): number | undefined {
  const started = new Set(
    events.filter((e) => e.node === node && e.atMs >= sinceMs && e.action === 'start' && e.digest === digest).map((e) => e.containerId),
  );
  return events.find((e) => e.node === node && e.atMs >= sinceMs && e.action === 'health_status: healthy' && started.has(e.containerId))?.atMs;
}

async function measure(
  fleet: Fleet,
  haproxy: RunningHaproxy,
  policy: string,
  digest: string,
  rollOut: () => Promise<Record<string, number>>,
): Promise<PolicyResult> {
  const load = startLoad({ url: haproxy.url, ratePerSecond: rate, durationMs: 180_000 });
  await sleep(2_000);
  const startMs = Date.now();
  const updateStarts = await rollOut();
  await waitFor(`${policy}: convergence`, () => converged(fleet, haproxy, digest), 150_000);
  const convergedMs = Date.now() - startMs;
  await sleep(2_000);
  const result = await load.stop();
  const events = fleet.recorder.events();
  const down = fleet.unavailability(startMs, Date.now());
  let updateSumMs = 0;
  for (const node of fleet.nodes) {
    const from = updateStarts[node.id];
    const to = healthyAt(events, node.id, digest, startMs);
    if (from !== undefined && to !== undefined) updateSumMs += to - from;
  }
  const downSumMs = Object.values(down.downMsByNode).reduce((a, b) => a + b, 0);
  const row: PolicyResult = {
    policy,
    failed: result.failed,
    sent: result.sent,
    served: result.ok,
    p99Ms: result.latency.all.p99,
    p99FastMs: result.latency.fast.p99,
    convergedMs,
    maxDown: down.maxDown,
    downSumMs,
    updateSumMs,
    detectionMs: 0,
    load: result,
  };
  return row;
}

async function main(): Promise<void> {
  const fleet = await startFleet({ nodes: nodeCount, maxUnavailable: 1, variants: ['v2', 'v3'] });
  const rows: PolicyResult[] = [];
  let scriptedHaproxy: RunningHaproxy | undefined;
  try {
    process.stderr.write(`fleet of ${nodeCount} up in ${JSON.stringify(fleet.timings)}\n`);

    // ---- Baton: docker push, the agents do the rest.
    const v2 = fleet.digests.v2 as string;
    const batonSeq = (await fleet.events()).at(-1)?.seq ?? 0;
    let pushedAtMs = 0;
    rows.push(
      await measure(fleet, fleet.haproxy, 'Baton (one at a time, drained, health-gated)', v2, async () => {
        pushedAtMs = Date.now();
        await fleet.push('v2');
        return {};
      }),
    );
    // A Baton node's update is its lease, grant to release: drain, stop, start, health, readmit.
    // What lies between one release and the next grant is the cost of coordination.
    const log = (await fleet.events(batonSeq)).filter((e) => e.digest === v2);
    const batonRow = rows[0] as PolicyResult;
    batonRow.updateSumMs = 0;
    for (const grant of log.filter((e) => e.type === 'grant')) {
      const release = log.find((e) => e.type === 'release' && e.leaseId === grant.leaseId);
      if (release !== undefined) batonRow.updateSumMs += release.atMs - grant.atMs;
    }
    const firstGrant = log.find((e) => e.type === 'grant');
    batonRow.detectionMs = firstGrant === undefined ? 0 : firstGrant.atMs - pushedAtMs;

    // ---- The scripted policies: agents off, a balancer checking the apps themselves.
    for (const node of fleet.nodes) await fleet.killAgent(node.index, 'SIGTERM');
    await fleet.haproxy.stop();
    scriptedHaproxy = await startAppCheckHaproxy(fleet.nodes);
    await scriptedHaproxy.waitAllUp(15_000);

    const scripted = async (variant: TestAppVariant, oneAtATime: boolean): Promise<Record<string, number>> => {
      const digest = fleet.digests[variant] as string;
      const imageByDigest = testAppImage(fleet.registry.host, digest);
      const starts: Record<string, number> = {};
      const replace = async (node: Fleet['nodes'][number]): Promise<void> => {
        const runtime = createDockerRuntime({ socketPath: node.engine.socketPath, timeoutMs: 60_000, logger: silentLogger() });
        const service = serviceSchema.parse((node.config.config.services as unknown[])[0]);
        starts[node.id] = Date.now();
        await runtime.stop(FLEET_SERVICE, service.stopTimeoutSeconds);
        await runtime.remove(FLEET_SERVICE);
        await runtime.create(containerSpecFor(service), FLEET_SERVICE, imageByDigest, digest);
        await runtime.start(FLEET_SERVICE);
      };
      if (oneAtATime) for (const node of fleet.nodes) await replace(node);
      else await Promise.all(fleet.nodes.map(replace));
      return starts;
    };
    const prePull = async (variant: TestAppVariant): Promise<void> => {
      const digest = fleet.digests[variant] as string;
      await Promise.all(
        fleet.nodes.map((node) =>
          createDockerRuntime({ socketPath: node.engine.socketPath, timeoutMs: 60_000, logger: silentLogger() }).pull(
            testAppImage(fleet.registry.host, digest),
          ),
        ),
      );
    };

    await prePull('v3');
    rows.push(await measure(fleet, scriptedHaproxy, 'all at once, no drain (script)', fleet.digests.v3 as string, () => scripted('v3', false)));
    await prePull('v1'); // already present: v1 ran before
    rows.push(await measure(fleet, scriptedHaproxy, 'one at a time, no drain (script)', fleet.digests.v1 as string, () => scripted('v1', true)));
  } finally {
    await scriptedHaproxy?.stop();
    await fleet.stop();
  }

  const header =
    '| policy | failed requests | requests served (of sent) | p99 latency, all (ms) | p99 latency, /version (ms) | ' +
    'push → converged (s) | detection (s) | sum of node update times (s) | converged / (detection + sum) | ' +
    'most nodes down at once | sum of node down times (s) |';
  const lines = [header, '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|'];
  const seconds = (ms: number): string => (ms / 1_000).toFixed(1);
  for (const r of [rows[1], rows[2], rows[0]] as PolicyResult[]) {
    const ratio = r.convergedMs / (r.detectionMs + r.updateSumMs);
    lines.push(
      `| ${r.policy} | ${r.failed} | ${r.served} (${r.sent}) | ${r.p99Ms} | ${r.p99FastMs} | ${seconds(r.convergedMs)} | ` +
        `${seconds(r.detectionMs)} | ${seconds(r.updateSumMs)} | ${ratio.toFixed(2)}x | ${r.maxDown} | ${seconds(r.downSumMs)} |`,
    );
  }
  process.stdout.write(
    `\nRollout of ${nodeCount} nodes under ${rate} requests/s through HAProxy (10% of them 1 s long), ` +
      `agents polling every 2 s. Windows: 2 s before the push (or script start) to 2 s after convergence.\n\n${lines.join('\n')}\n`,
  );
  if (values.json) {
    writeFileSync(values.json, `${JSON.stringify(rows.map((r) => ({ ...r, load: { ...r.load, versions: undefined } })), null, 2)}\n`);
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`bench:rollout failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);

