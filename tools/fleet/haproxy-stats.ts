/**
 * HAProxy's own view of the fleet, from its stats socket: each server's state now (`show stat`),
 * and `sampleServers()`, which records those states every few milliseconds during a scenario, to
 * count the servers out of service at once as HAProxy saw them.
 */
import { connect } from 'node:net';
import type { RunningHaproxy } from './haproxy.js';

export type ServerStatus = 'UP' | 'DOWN' | 'NOLB' | 'MAINT' | 'DRAIN' | string;

export interface ServerState {
  name: string;
  /** `UP`, `DOWN`, `UP 1/2` (going down), `DOWN 1/2` (going up), `MAINT`... as `show stat` says. */
  status: ServerStatus;
  /** Requests currently in flight on this server. */
  current: number;
  /** Total sessions (requests, the app closes after each) sent to the server. */
  total: number;
}

/** Sends one command to the stats socket and resolves with the whole answer (HAProxy closes after it). */
export function statsCommand(socketPath: string, text: string, timeoutMs = 3_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ path: socketPath });
    let answer = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`stats socket: no answer to ${JSON.stringify(text)} within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (answer += chunk));
    socket.once('connect', () => socket.end(`${text}\n`));
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(answer);
    });
  });
}

/** The servers of backend `app` from `show stat` CSV. */
export function parseShowStat(csv: string, backend = 'app'): ServerState[] {
  const lines = csv.split('\n').filter((l) => l.trim() !== '');
  const header = lines.find((l) => l.startsWith('# '));
  if (!header) throw new Error(`show stat: no header in ${JSON.stringify(csv.slice(0, 200))}`);
  const columns = header.slice(2).split(',');
  const index = (name: string): number => {
    const i = columns.indexOf(name);
    if (i === -1) throw new Error(`show stat: no column ${name}`);
    return i;
  };
  const [px, sv, status, scur, stot] = ['pxname', 'svname', 'status', 'scur', 'stot'].map(index) as [number, number, number, number, number];
  const states: ServerState[] = [];
  for (const line of lines) {
    if (line.startsWith('#')) continue;
    const fields = line.split(',');
    if (fields[px] !== backend || fields[sv] === 'BACKEND' || fields[sv] === 'FRONTEND') continue;
    states.push({ name: fields[sv] ?? '', status: fields[status] ?? '', current: Number(fields[scur] ?? 0), total: Number(fields[stot] ?? 0) });
  }
  return states;
}

// ---- Over time: which servers were in service, sampled from the stats socket

/**
 * In service: HAProxy sends it traffic. `UP` and `UP 1/2` (one check failed, still up) are in;
 * `DOWN`, `DOWN 1/2` (coming back, not yet), `NOLB`, `DRAIN`, `MAINT` are out. (`no check` is in.)
 */
export function inService(status: string): boolean {
  return status.startsWith('UP') || status === 'no check';
}

export interface ServerSample {
  /** ms since epoch, when the answer came. */
  atMs: number;
  /** Status by server name. */
  states: Record<string, string>;
}

export interface OutInterval {
  server: string;
  /** First sample that saw it out. */
  fromMs: number;
  /** First sample that saw it back in; the last sample's time when still out (`open`). */
  toMs: number;
  open: boolean;
}

export interface ServerSampler {
  samples(): ServerSample[];
  /** Every out-of-service interval, per server, in time order. */
  outIntervals(): OutInterval[];
  /** The most servers out of service in one sample over [fromMs, toMs], leaving out `exclude`. */
  maxOut(options?: { fromMs?: number; toMs?: number; exclude?: string[] }): { maxOut: number; atMs: number | undefined; servers: string[] };
  /** The first sample at or after `afterMs` that saw `server` out of service (ms since epoch). */
  firstOut(server: string, afterMs: number): number | undefined;
  /** The first sample at or after `afterMs` that saw `server` in service. */
  firstIn(server: string, afterMs: number): number | undefined;
  /** A line per state change, for failure messages. */
  describe(sinceMs?: number): string;
  /** Stops sampling; resolves when the sample in flight has returned. */
  stop(): Promise<void>;
}

/**
 * Samples `show stat` every `everyMs` (default 25 ms: a state change is seen within that, plus the
 * socket's round trip) until stop(). Failed samples (socket busy, HAProxy restarting) are skipped.
 */
export function sampleServers(haproxy: Pick<RunningHaproxy, 'serverStates'>, options: { everyMs?: number } = {}): ServerSampler {
  const everyMs = options.everyMs ?? 25;
  const samples: ServerSample[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      try {
        const states = await haproxy.serverStates();
        samples.push({ atMs: Date.now(), states: Object.fromEntries(states.map((s) => [s.name, s.status])) });
      } catch {
        // Skip this one.
      }
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  const servers = (): string[] => [...new Set(samples.flatMap((s) => Object.keys(s.states)))];
  const outIntervals = (): OutInterval[] => {
    const intervals: OutInterval[] = [];
    for (const server of servers()) {
      let from: number | undefined;
      for (const sample of samples) {
        const status = sample.states[server];
        if (status === undefined) continue;
        if (!inService(status) && from === undefined) from = sample.atMs;
        if (inService(status) && from !== undefined) {
          intervals.push({ server, fromMs: from, toMs: sample.atMs, open: false });
          from = undefined;
        }
      }
      if (from !== undefined) intervals.push({ server, fromMs: from, toMs: samples.at(-1)?.atMs ?? from, open: true });
    }
    return intervals.sort((a, b) => a.fromMs - b.fromMs);
  };
  const find = (server: string, afterMs: number, wantIn: boolean): number | undefined =>
    samples.find((s) => s.atMs >= afterMs && s.states[server] !== undefined && inService(s.states[server] as string) === wantIn)?.atMs;
  return {
    samples: () => [...samples],
    outIntervals,
    maxOut: ({ fromMs = Number.NEGATIVE_INFINITY, toMs = Number.POSITIVE_INFINITY, exclude = [] } = {}) => {
      let best = { maxOut: 0, atMs: undefined as number | undefined, servers: [] as string[] };
      for (const sample of samples) {
        if (sample.atMs < fromMs || sample.atMs > toMs) continue;
        const out = Object.entries(sample.states)
          .filter(([name, status]) => !exclude.includes(name) && !inService(status))
          .map(([name]) => name);
        if (out.length > best.maxOut) best = { maxOut: out.length, atMs: sample.atMs, servers: out };
      }
      return best;
    },
    firstOut: (server, afterMs) => find(server, afterMs, false),
    firstIn: (server, afterMs) => find(server, afterMs, true),
    describe: (sinceMs = 0) => {
      const lines: string[] = [];
      let previous: Record<string, string> = {};
      for (const sample of samples) {
        if (sample.atMs < sinceMs) {
          previous = sample.states;
          continue;
        }
        const changed = Object.entries(sample.states).filter(([name, status]) => previous[name] !== status);
        if (changed.length > 0) {
          lines.push(`${new Date(sample.atMs).toISOString().slice(11, 23)} ${changed.map(([n, st]) => `${n}=${st}`).join(' ')}`);
        }
        previous = sample.states;
      }
      return lines.join('\n');
    },
    stop: async () => {
      running = false;
      await loop;
    },
  };
}
