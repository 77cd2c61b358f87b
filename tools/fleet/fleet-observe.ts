/**
 * How a test looks at a running fleet: each node's container from its own engine, the coordinator's
 * status and event log, "converged" by all three of engines, coordinator and HAProxy, and the
 * recent lines of every process for a failure message.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { statusResponseSchema, type BatonEvent, type StatusResponse } from '../../shared/api/v1.js';
import { LABEL_DIGEST } from '../../agent/docker/runtime.js';
import { formatEvents } from './docker-events.js';
import type { Fleet, FleetNode } from './fleet.js';
import { FLEET_GROUP, FLEET_SERVICE } from './fleet-names.js';
import { sleep } from './wait.js';

export interface NodeContainerState {
  node: string;
  /** The digest label of the container named `app`, if any. */
  digest: string | undefined;
  running: boolean;
  health: string;
  /** An `app-baton-old` container exists (an update in flight or a leftover). */
  hasOld: boolean;
}

export async function containerState(node: FleetNode): Promise<NodeContainerState> {
  const inspect = async (name: string) => {
    try {
      return await node.docker.getContainer(name).inspect();
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode === 404) return undefined;
      throw error;
    }
  };
  const [current, old] = await Promise.all([inspect(FLEET_SERVICE), inspect(`${FLEET_SERVICE}-baton-old`)]);
  return {
    node: node.id,
    digest: current?.Config.Labels?.[LABEL_DIGEST],
    running: current?.State.Running ?? false,
    health: current?.State.Health?.Status ?? 'none',
    hasOld: old !== undefined,
  };
}

async function getJson(url: string): Promise<unknown> {
  const answer = await request(url, { headersTimeout: 5_000, bodyTimeout: 5_000 });
  const text = await answer.body.text();
  if (answer.statusCode !== 200) throw new Error(`GET ${url}: ${answer.statusCode} ${text.slice(0, 300)}`);
  return JSON.parse(text) as unknown;
}

export async function readStatus(coordinatorUrl: string): Promise<StatusResponse> {
  return statusResponseSchema.parse(await getJson(`${coordinatorUrl}/v1/status`));
}

/** Every event of the coordinator's log after `afterSeq`, a page of 1000 at a time. */
export async function readEvents(coordinatorUrl: string, afterSeq: number): Promise<BatonEvent[]> {
  const all: BatonEvent[] = [];
  let after = afterSeq;
  for (;;) {
    const page = (await getJson(`${coordinatorUrl}/v1/events?afterSeq=${after}&limit=1000`)) as { events: BatonEvent[] };
    all.push(...page.events);
    if (page.events.length < 1_000) return all;
    after = page.events[page.events.length - 1]?.seq ?? after;
  }
}

/** Resolves when every node runs `digest`, healthy, with no old container left, and HAProxy has every server UP. */
export async function waitConverged(fleet: Fleet, digest: string, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let last = '';
  while (performance.now() < deadline) {
    try {
      const states = await fleet.containers();
      const status = await fleet.status();
      const group = status.groups.find((g) => g.name === FLEET_GROUP);
      const servers = await fleet.haproxy.serverStates();
      const enginesOk = states.every((s) => s.digest === digest && s.running && s.health === 'healthy' && !s.hasOld);
      const coordinatorOk =
        group !== undefined &&
        group.nodes.length === fleet.nodes.length &&
        group.nodes.every((n) => n.currentDigest === digest && n.health === 'healthy' && n.step === 'idle') &&
        group.leases.length === 0;
      const lbOk = servers.length === fleet.nodes.length && servers.every((s) => s.status === 'UP');
      if (enginesOk && coordinatorOk && lbOk) return;
      last =
        `engines: ${JSON.stringify(states.map((s) => [s.node, s.digest?.slice(7, 19), s.running, s.health, s.hasOld]))}; ` +
        `coordinator: ${JSON.stringify(group?.nodes.map((n) => [n.nodeId, n.currentDigest?.slice(7, 19), n.health, n.step]))} ` +
        `leases ${group?.leases.length} rollout ${group?.rollout?.state}; haproxy: ${JSON.stringify(servers.map((s) => [s.name, s.status]))}`;
    } catch (error) {
      last = String(error);
    }
    await sleep(250);
  }
  throw new Error(`fleet did not converge on ${digest} within ${timeoutMs} ms; last: ${last}\n${fleet.diagnostics()}`);
}

/** Recent lines of everything since `sinceMs`, for a failure message. */
export function fleetDiagnostics(fleet: Fleet, sinceMs: number): string {
  const parts: string[] = [];
  parts.push(`--- docker events ---\n${formatEvents(fleet.recorder.events(), sinceMs)}`);
  parts.push(`--- coordinator (last 40 lines) ---\n${fleet.coordinator.lines.slice(-40).join('\n')}`);
  // Routine heartbeat answers would push everything else out of the tail.
  const worthReading = (line: string) => !line.includes('"msg":"coordinator answered"');
  for (const node of fleet.nodes) {
    parts.push(`--- ${node.id} agent (last 40 lines but heartbeats) ---\n${node.agent.output.filter(worthReading).slice(-40).join('\n')}`);
  }
  parts.push(`--- haproxy (non-200 and state lines, last 40) ---\n${fleet.haproxy
    .log()
    .filter((l) => !/ 200 \d+ /.test(l))
    .slice(-40)
    .join('\n')}`);
  return parts.join('\n');
}

/** With BATON_FLEET_LOGS=<folder>: every process's full output is kept there after the fleet stops. */
export function keepFleetLogs(fleet: Fleet): void {
  const keepIn = process.env.BATON_FLEET_LOGS;
  if (!keepIn) return;
  const folder = join(keepIn, `fleet-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  mkdirSync(folder, { recursive: true });
  fleet.coordinators.forEach((c, i) => writeFileSync(join(folder, `coordinator-${i}.log`), `${c.lines.join('\n')}\n`));
  for (const node of fleet.nodes) {
    node.agents.forEach((a, i) => writeFileSync(join(folder, `${node.id}-agent-${i}.log`), `${a.output.join('\n')}\n`));
  }
  writeFileSync(join(folder, 'haproxy.log'), `${fleet.haproxy.log().join('\n')}\n`);
  writeFileSync(join(folder, 'docker-events.log'), `${formatEvents(fleet.recorder.events(), 0)}\n`);
}
