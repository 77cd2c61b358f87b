/**
 * Coordinator benchmark: simulated agents over real HTTP on loopback, heartbeating and taking
 * leases, at 1,000 and 10,000 nodes, against the built coordinator running as its own process.
 * Prints, side by side: heartbeats per second sustained, the coordinator's CPU (share of one
 * core, from /proc), and lease grant latency p50/p99 (client round trip, granted requests only).
 *
 * Usage: npm run build && npm run bench:coordinator [-- --seconds 30 --nodes 1000,10000]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { batonCli } from '../../tools/fleet/coordinator.js';
import { parseArgs } from 'node:util';
import { createInterface } from 'node:readline';
import { Worker } from 'node:worker_threads';
import { Pool } from 'undici';
import { runPaced } from '../pace.js';
import { processCpuSeconds, processRssMb } from '../process-stats.js';
import type { HeartbeatWorkerData, HeartbeatWorkerMessage, HeartbeatWorkerReport } from './heartbeat-worker.js';

const cli = batonCli;
const heartbeatIntervalMs = 10_000;
const nodesPerGroup = 10;
/** Lease grants per second while heartbeats run: a fleet-wide rollout moving steadily. */
const grantsPerSecond = 20;

interface ScaleResult {
  nodes: number;
  heartbeatsPerSecond: number;
  heartbeatErrors: number;
  coordinatorCpuPercent: number;
  grants: number;
  grantP50Ms: number;
  grantP99Ms: number;
  heartbeatP99Ms: number;
  rssMb: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

const digest = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;

async function startCoordinator(dataFile: string): Promise<{ url: string; pid: number; stop: () => Promise<void> }> {
  const child = spawn(process.execPath, [cli, 'coordinator'], {
    env: { PATH: process.env.PATH ?? '', BATON_LISTEN: '127.0.0.1:0', BATON_DATA: dataFile, BATON_LOG_LEVEL: 'info', BATON_HEARTBEAT_MISS_LIMIT_MS: '60000' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`coordinator exited with ${code}`)));
    // Every log line is read (and dropped), as a log shipper would: logging is part of the cost measured.
    createInterface({ input: child.stdout }).on('line', (line) => {
      const match = /"listen":"([^"]+)"/.exec(line);
      if (match && line.includes("coordinator listening")) resolve(`http://${match[1]}`);
    });
  });
  return {
    url,
    pid: child.pid as number,
    stop: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

async function post(pool: Pool, path: string, body: unknown): Promise<{ status: number; body: unknown; ms: number }> {
  const started = performance.now();
  const answer = await pool.request({ method: 'POST', path, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const parsed: unknown = await answer.body.json();
  return { status: answer.statusCode, body: parsed, ms: performance.now() - started };
}

function heartbeatBody(nodeId: number, currentDigest: string) {
  return {
    group: `g${Math.floor(nodeId / nodesPerGroup)}`,
    host: `10.0.${nodeId >> 8}.${nodeId & 255}`,
    image: 'registry.local/app:latest',
    currentDigest,
    health: 'healthy',
    step: 'idle',
    agentVersion: 'bench',
  };
}

async function runScale(nodeCount: number, measureSeconds: number): Promise<ScaleResult> {
  const directory = mkdtempSync(join(tmpdir(), 'baton-bench-'));
  const coordinator = await startCoordinator(join(directory, 'baton.db'));
  const pool = new Pool(coordinator.url, { connections: 64, pipelining: 1 });
  try {
    // Join every node first (a join is a durable write); the measurement covers the steady state.
    for (let start = 0; start < nodeCount; start += 200) {
      await Promise.all(
        Array.from({ length: Math.min(200, nodeCount - start) }, (_, offset) =>
          post(pool, `/v1/nodes/n${start + offset}/heartbeat`, heartbeatBody(start + offset, digest(1))),
        ),
      );
    }

    const grantLatencies: number[] = [];
    let running = true;
    const heartbeatWorker = new Worker(new URL('./heartbeat-worker.js', import.meta.url), {
      workerData: { url: coordinator.url, nodeCount, nodesPerGroup, heartbeatIntervalMs, initialDigest: digest(1) } satisfies HeartbeatWorkerData,
    });
    const heartbeatReport = new Promise<HeartbeatWorkerReport>((resolve) => heartbeatWorker.once('message', resolve));

    // Rollouts at a steady pace: one lease cycle (acquire, then release "updated") every
    // 1000/grantsPerSecond ms, walking group by group through the fleet to new digests.
    const rolloutLoop = (async () => {
      const groupCount = Math.floor(nodeCount / nodesPerGroup);
      await runPaced(1_000 / grantsPerSecond, () => running, async (cycle) => {
        const group = Math.floor(cycle / nodesPerGroup) % groupCount;
        const nodeId = group * nodesPerGroup + (cycle % nodesPerGroup);
        const target = digest(2 + Math.floor(cycle / (groupCount * nodesPerGroup)));
        const answer = await post(pool, '/v1/leases', { nodeId: `n${nodeId}`, group: `g${group}`, targetDigest: target });
        const decision = answer.body as { granted: boolean; leaseId: string; fencingToken: number };
        if (!decision.granted) return;
        grantLatencies.push(answer.ms);
        await post(pool, `/v1/leases/${decision.leaseId}/release`, { fencingToken: decision.fencingToken, outcome: 'updated' });
        heartbeatWorker.postMessage({ type: 'digest', nodeId, digest: target } satisfies HeartbeatWorkerMessage);
      });
    })();

    await new Promise((resolve) => setTimeout(resolve, 3_000)); // warm-up
    heartbeatWorker.postMessage({ type: 'reset' } satisfies HeartbeatWorkerMessage);
    grantLatencies.length = 0;
    const cpuBefore = processCpuSeconds(coordinator.pid);
    const startedAt = performance.now();
    await new Promise((resolve) => setTimeout(resolve, measureSeconds * 1_000));
    const elapsedSeconds = (performance.now() - startedAt) / 1_000;
    const cpuSeconds = processCpuSeconds(coordinator.pid) - cpuBefore;
    const rssMb = processRssMb(coordinator.pid);
    const grantSorted = [...grantLatencies].sort((a, b) => a - b);
    running = false;
    heartbeatWorker.postMessage({ type: 'stop' } satisfies HeartbeatWorkerMessage);
    const report = await heartbeatReport;
    await rolloutLoop;
    await heartbeatWorker.terminate();
    return {
      nodes: nodeCount,
      heartbeatsPerSecond: report.heartbeats / elapsedSeconds,
      heartbeatErrors: report.errors,
      coordinatorCpuPercent: (cpuSeconds / elapsedSeconds) * 100,
      grants: grantSorted.length,
      grantP50Ms: percentile(grantSorted, 50),
      grantP99Ms: percentile(grantSorted, 99),
      heartbeatP99Ms: percentile([...report.latenciesMs].sort((a, b) => a - b), 99),
      rssMb,
    };
  } finally {
    await pool.close();
    await coordinator.stop();
    rmSync(directory, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { seconds: { type: 'string', default: '30' }, nodes: { type: 'string', default: '1000,10000' } } });
  const seconds = Number(values.seconds);
  const scales = values.nodes.split(',').map(Number);
  const results: ScaleResult[] = [];
  for (const nodes of scales) {
    process.stderr.write(`measuring ${nodes} nodes for ${seconds} s...\n`);
    results.push(await runScale(nodes, seconds));
  }
  const rows: [string, (r: ScaleResult) => string][] = [
    ['nodes', (r) => String(r.nodes)],
    ['heartbeats/s sustained', (r) => r.heartbeatsPerSecond.toFixed(0)],
    ['  (expected: nodes / 10 s)', (r) => (r.nodes / 10).toFixed(0)],
    ['heartbeat errors', (r) => String(r.heartbeatErrors)],
    ['heartbeat p99 (ms)', (r) => r.heartbeatP99Ms.toFixed(2)],
    ['coordinator CPU (% of one core)', (r) => r.coordinatorCpuPercent.toFixed(1)],
    ['coordinator RSS (MiB)', (r) => r.rssMb.toFixed(0)],
    ['lease grants measured', (r) => String(r.grants)],
    ['grant latency p50 (ms)', (r) => r.grantP50Ms.toFixed(2)],
    ['grant latency p99 (ms)', (r) => r.grantP99Ms.toFixed(2)],
  ];
  const width = 34;
  process.stdout.write(
    `\nBaton coordinator benchmark (${seconds} s per scale, heartbeat every ${heartbeatIntervalMs / 1000} s, ${nodesPerGroup} nodes per group, ${grantsPerSecond} lease grants/s)\n`,
  );
  for (const [label, cell] of rows) {
    process.stdout.write(`${label.padEnd(width)}${results.map((r) => cell(r).padStart(12)).join('')}\n`);
  }
  const largest = results[results.length - 1];
  if (largest) {
    process.stdout.write(
      `\ntarget at ${largest.nodes} nodes: CPU < 25 % (${largest.coordinatorCpuPercent.toFixed(1)} %), grant p99 < 5 ms (${largest.grantP99Ms.toFixed(2)} ms)\n`,
    );
  }
}

void main();
