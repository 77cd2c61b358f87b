/**
 * Coordinator benchmark: simulated agents over real HTTP on loopback, heartbeating and taking
 * leases, at 1,000 and 10,000 nodes, against the built coordinator running as its own process.
 * Prints, side by side: heartbeats per second sustained, the coordinator's CPU (share of one
 * core, from /proc), and lease grant latency p50/p99 (client round trip, granted requests only).
 *
 * Usage: npm run build && npm run bench:coordinator [-- --seconds 30 --nodes 1000,10000]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createInterface } from 'node:readline';
import { Pool } from 'undici';

const cli = fileURLToPath(new URL('../../cli/baton.js', import.meta.url));
const clockTicksPerSecond = 100;
const heartbeatIntervalMs = 10_000;
const nodesPerGroup = 10;

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

function processCpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  // utime and stime are fields 14 and 15 of /proc/<pid>/stat; index 11 and 12 after the name.
  return (Number(fields[11]) + Number(fields[12])) / clockTicksPerSecond;
}

function processRssMb(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) / 1024 : 0;
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
      if (match) resolve(`http://${match[1]}`);
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
  const currentDigest = new Array<string>(nodeCount).fill(digest(1));
  try {
    // Join every node first (a join is a durable write); the measurement covers the steady state.
    for (let start = 0; start < nodeCount; start += 200) {
      await Promise.all(
        Array.from({ length: Math.min(200, nodeCount - start) }, (_, offset) =>
          post(pool, `/v1/nodes/n${start + offset}/heartbeat`, heartbeatBody(start + offset, digest(1))),
        ),
      );
    }

    let heartbeats = 0;
    let heartbeatErrors = 0;
    const heartbeatLatencies: number[] = [];
    const grantLatencies: number[] = [];
    let running = true;

    // Heartbeats: every node once per interval, spread evenly across it.
    const heartbeatLoop = (async () => {
      const spacingMs = heartbeatIntervalMs / nodeCount;
      const startedAt = performance.now();
      let sent = 0;
      const inFlight = new Set<Promise<void>>();
      while (running) {
        const due = Math.floor((performance.now() - startedAt) / spacingMs);
        while (sent < due && running) {
          const nodeId = sent % nodeCount;
          sent += 1;
          const task = post(pool, `/v1/nodes/n${nodeId}/heartbeat`, heartbeatBody(nodeId, currentDigest[nodeId] as string))
            .then((answer) => {
              if (answer.status === 200) {
                heartbeats += 1;
                heartbeatLatencies.push(answer.ms);
              } else heartbeatErrors += 1;
            })
            .catch(() => {
              heartbeatErrors += 1;
            })
            .finally(() => inFlight.delete(task));
          inFlight.add(task);
        }
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      await Promise.all(inFlight);
    })();

    // Rollouts: ten groups at a time roll to a new digest, node by node, through real leases.
    const rolloutLoop = (async () => {
      let generation = 2;
      const groupCount = Math.floor(nodeCount / nodesPerGroup);
      let nextGroup = 0;
      while (running) {
        const groups = Array.from({ length: 10 }, () => nextGroup++ % groupCount);
        const target = digest(generation++);
        await Promise.all(
          groups.map(async (group) => {
            for (let member = 0; member < nodesPerGroup && running; member += 1) {
              const nodeId = group * nodesPerGroup + member;
              const answer = await post(pool, '/v1/leases', { nodeId: `n${nodeId}`, group: `g${group}`, targetDigest: target });
              const decision = answer.body as { granted: boolean; leaseId: string; fencingToken: number };
              if (!decision.granted) continue;
              grantLatencies.push(answer.ms);
              await post(pool, `/v1/leases/${decision.leaseId}/release`, { fencingToken: decision.fencingToken, outcome: 'updated' });
              currentDigest[nodeId] = target;
            }
          }),
        );
      }
    })();

    await new Promise((resolve) => setTimeout(resolve, 3_000)); // warm-up
    heartbeats = 0;
    heartbeatLatencies.length = 0;
    grantLatencies.length = 0;
    const cpuBefore = processCpuSeconds(coordinator.pid);
    const startedAt = performance.now();
    await new Promise((resolve) => setTimeout(resolve, measureSeconds * 1_000));
    const elapsedSeconds = (performance.now() - startedAt) / 1_000;
    const cpuSeconds = processCpuSeconds(coordinator.pid) - cpuBefore;
    const result = {
      heartbeats,
      grants: grantLatencies.length,
      grantSorted: [...grantLatencies].sort((a, b) => a - b),
      heartbeatSorted: [...heartbeatLatencies].sort((a, b) => a - b),
      rssMb: processRssMb(coordinator.pid),
    };
    running = false;
    await Promise.all([heartbeatLoop, rolloutLoop]);
    return {
      nodes: nodeCount,
      heartbeatsPerSecond: result.heartbeats / elapsedSeconds,
      heartbeatErrors,
      coordinatorCpuPercent: (cpuSeconds / elapsedSeconds) * 100,
      grants: result.grants,
      grantP50Ms: percentile(result.grantSorted, 50),
      grantP99Ms: percentile(result.grantSorted, 99),
      heartbeatP99Ms: percentile(result.heartbeatSorted, 99),
      rssMb: result.rssMb,
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
  process.stdout.write(`\nBaton coordinator benchmark (${seconds} s per scale, heartbeat every ${heartbeatIntervalMs / 1000} s, ${nodesPerGroup} nodes per group)\n`);
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
