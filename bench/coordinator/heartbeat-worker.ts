/**
 * The heartbeat load of the coordinator benchmark, on its own thread so that the grant
 * latency measured on the main thread is not delayed by the load generator's own work.
 * Every node heartbeats once per interval, spread evenly across it.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Pool } from 'undici';
import { runPaced } from '../pace.js';

export interface HeartbeatWorkerData {
  url: string;
  nodeCount: number;
  nodesPerGroup: number;
  heartbeatIntervalMs: number;
  initialDigest: string;
}

export type HeartbeatWorkerMessage = { type: 'digest'; nodeId: number; digest: string } | { type: 'reset' } | { type: 'stop' };
export interface HeartbeatWorkerReport {
  heartbeats: number;
  errors: number;
  latenciesMs: number[];
}

const data = workerData as HeartbeatWorkerData;
const port = parentPort;
if (port === null) throw new Error('heartbeat-worker runs as a worker thread');

const pool = new Pool(data.url, { connections: 32 });
const currentDigest = new Array<string>(data.nodeCount).fill(data.initialDigest);
let running = true;
let heartbeats = 0;
let errors = 0;
let latenciesMs: number[] = [];

port.on('message', (message: HeartbeatWorkerMessage) => {
  if (message.type === 'digest') currentDigest[message.nodeId] = message.digest;
  if (message.type === 'reset') {
    heartbeats = 0;
    errors = 0;
    latenciesMs = [];
  }
  if (message.type === 'stop') running = false;
});

async function beat(nodeId: number): Promise<void> {
  const started = performance.now();
  try {
    const answer = await pool.request({
      method: 'POST',
      path: `/v1/nodes/n${nodeId}/heartbeat`,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        group: `g${Math.floor(nodeId / data.nodesPerGroup)}`,
        host: `host-${nodeId}`,
        image: 'registry.local/app:latest',
        currentDigest: currentDigest[nodeId],
        health: 'healthy',
        step: 'idle',
        agentVersion: 'bench',
      }),
    });
    await answer.body.dump();
    if (answer.statusCode === 200) {
      heartbeats += 1;
      latenciesMs.push(performance.now() - started);
    } else errors += 1;
  } catch {
    errors += 1;
  }
}

await runPaced(data.heartbeatIntervalMs / data.nodeCount, () => running, (sent) => beat(sent % data.nodeCount));
await pool.close();
port.postMessage({ heartbeats, errors, latenciesMs } satisfies HeartbeatWorkerReport);
