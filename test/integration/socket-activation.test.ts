/**
 * Socket activation: the built agent under Debian's `systemd-socket-activate`, which holds the
 * readiness socket the way baton-agent.socket does, with a small supervisor restarting the agent the
 * way systemd restarts the service. Checks made while no agent process runs wait in the socket's
 * queue and are answered by the next agent, from its live probe, at once; without the inherited
 * socket the same restart refuses them. The engine is a fake Docker API on a unix socket (one
 * running container), the app a tiny HTTP server; everything on loopback.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, get as httpGet, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { batonCli } from '../../tools/fleet/coordinator.js';
import { freePort } from '../../tools/fleet/registry.js';

const digest = `sha256:${'a'.repeat(64)}`;
const hasSocketActivate = ['/usr/bin/systemd-socket-activate', '/bin/systemd-socket-activate'].some((path) => existsSync(path));

/** The Docker API as far as the agent's probe and reconcile ask: `web` runs; nothing else exists. */
function fakeEngine(socketPath: string): Promise<Server> {
  const container = {
    Id: 'c'.repeat(64),
    Name: '/web',
    Image: `sha256:${'b'.repeat(64)}`,
    State: { Status: 'running', Running: true, Paused: false, Restarting: false, OOMKilled: false, Dead: false, Pid: 1, ExitCode: 0 },
    Config: { Image: `127.0.0.1:9/app@${digest}`, Labels: { 'baton.service': 'web', 'baton.digest': digest } },
  };
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?', 1)[0] ?? '/';
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const inspected = /\/containers\/([^/]+)\/json$/.exec(path);
    if (inspected && (inspected[1] === 'web' || inspected[1] === container.Id)) reply(200, container);
    else if (/\/containers\/json$/.test(path)) reply(200, []);
    else if (/\/_ping$/.test(path)) reply(200, 'OK');
    else reply(404, { message: `No such object: ${path}` });
  });
  return new Promise((resolve) => server.listen(socketPath, () => resolve(server)));
}

function appServer(port: number): Promise<Server> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok');
  });
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve(server)));
}

interface Probe {
  sentAtMs: number;
  outcome: string;
}

/** One readiness check on a new connection (like HAProxy's), with its outcome: the status, or the error code. */
function check(port: number): Promise<Probe> {
  const sentAtMs = Date.now();
  return new Promise((resolve) => {
    const req = httpGet({ host: '127.0.0.1', port, path: '/ready/web', agent: false, timeout: 10_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve({ sentAtMs, outcome: String(res.statusCode) }));
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
    req.on('error', (error: NodeJS.ErrnoException) => resolve({ sentAtMs, outcome: error.code ?? error.message }));
  });
}

interface Supervised {
  child: ChildProcess;
  /** Supervisor events: `pid <n>` when an agent starts, `exited <n>` when it ends, with their times. */
  events: Array<{ kind: string; value: number; atMs: number }>;
  /** The times the agents logged `readiness endpoint listening`. */
  listeningAtMs: number[];
  waitFor(what: () => boolean, timeoutMs: number): Promise<void>;
}

/**
 * Runs two agent generations one after the other, as systemd restarts a service: the second starts as
 * soon as the first exits. Under systemd-socket-activate, LISTEN_PID is set to each agent's own PID.
 */
function supervise(configPath: string, socketPort: number | undefined): Supervised {
  const agent = `exec ${JSON.stringify(process.execPath)} ${JSON.stringify(batonCli)} agent --config ${JSON.stringify(configPath)}`;
  const script = [
    'for generation in 1 2; do',
    `  ( echo "pid $BASHPID $(date +%s%3N)"; ${socketPort === undefined ? '' : 'export LISTEN_PID=$BASHPID; '}${agent} )`,
    '  echo "exited $generation $(date +%s%3N)"',
    'done',
  ].join('\n');
  const command = socketPort === undefined ? ['bash', ['-c', script]] : ['systemd-socket-activate', ['-l', `127.0.0.1:${socketPort}`, 'bash', '-c', script]];
  const child = spawn(command[0] as string, command[1] as string[], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const events: Supervised['events'] = [];
  const listeningAtMs: number[] = [];
  const onLine = (line: string) => {
    const event = /^(pid|exited) (\d+) (\d+)$/.exec(line);
    if (event) {
      events.push({ kind: event[1] as string, value: Number(event[2]), atMs: Number(event[3]) });
      return;
    }
    if (!line.startsWith('{')) return;
    const parsed = JSON.parse(line) as { msg?: string; time?: string };
    if (parsed.msg === 'readiness endpoint listening' && parsed.time) listeningAtMs.push(Date.parse(parsed.time));
  };
  createInterface({ input: child.stdout! }).on('line', onLine);
  createInterface({ input: child.stderr! }).on('line', onLine);
  const waitFor = async (what: () => boolean, timeoutMs: number) => {
    const deadline = Date.now() + timeoutMs;
    while (!what()) {
      if (Date.now() > deadline) throw new Error(`timed out; events ${JSON.stringify(events)}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  return { child, events, listeningAtMs, waitFor };
}

function stopGroup(child: ChildProcess): void {
  if (child.pid !== undefined && child.exitCode === null) {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** Restarts the first agent while checks go on every 20 ms; returns the checks sent while no agent served. */
async function restartUnderChecks(run: Supervised, port: number): Promise<{ all: Probe[]; gap: Probe[] }> {
  const first = run.events.find((e) => e.kind === 'pid')!.value;
  const pending: Array<Promise<Probe>> = [];
  const ticker = setInterval(() => pending.push(check(port)), 20);
  try {
    await new Promise((resolve) => setTimeout(resolve, 200));
    process.kill(first, 'SIGTERM');
    await run.waitFor(() => run.events.some((e) => e.kind === 'exited'), 20_000);
    // The second agent starts; keep checking until it has been listening for a while.
    await run.waitFor(() => run.listeningAtMs.length >= 2 || run.events.filter((e) => e.kind === 'exited').length >= 2, 20_000);
    await new Promise((resolve) => setTimeout(resolve, 300));
  } finally {
    clearInterval(ticker);
  }
  const all = await Promise.all(pending);
  const exitedAtMs = run.events.find((e) => e.kind === 'exited')!.atMs;
  const secondListeningAtMs = run.listeningAtMs[1] ?? Number.POSITIVE_INFINITY;
  return { all, gap: all.filter((p) => p.sentAtMs > exitedAtMs && p.sentAtMs < secondListeningAtMs) };
}

describe.skipIf(!hasSocketActivate)('readiness under socket activation (systemd-socket-activate)', () => {
  let scratch: string;
  let engine: Server;
  let app: Server;
  const children: ChildProcess[] = [];

  function writeConfig(readinessPort: number, appPort: number): string {
    const path = join(scratch, `agent-${readinessPort}.yaml`);
    writeFileSync(
      path,
      stringify({
        nodeId: 'node-1',
        host: '127.0.0.1',
        coordinator: { urls: ['http://127.0.0.1:9'], requestTimeoutMs: 500 },
        docker: { socketPath: join(scratch, 'docker.sock') },
        schedule: { cron: '0 0 1 1 *', splayMs: 0 },
        readiness: { listen: `127.0.0.1:${readinessPort}` },
        stateDir: join(scratch, `state-${readinessPort}`),
        logLevel: 'info',
        services: [
          {
            group: 'web',
            image: '127.0.0.1:9/app:latest',
            containerName: 'web',
            health: { http: { url: `http://127.0.0.1:${appPort}/health`, timeoutMs: 1_000 }, consecutivePasses: 1, minHealthyMs: 0 },
          },
        ],
      }),
    );
    return path;
  }

  let appPort: number;

  beforeAll(async () => {
    if (!existsSync(batonCli)) throw new Error(`${batonCli} is missing: run 'npm run build' first`);
    scratch = mkdtempSync(join(tmpdir(), 'baton-socket-'));
    engine = await fakeEngine(join(scratch, 'docker.sock'));
    appPort = await freePort();
    app = await appServer(appPort);
  });

  afterAll(async () => {
    for (const child of children) stopGroup(child);
    await Promise.all([engine, app].filter(Boolean).map((s) => new Promise((resolve) => s.close(resolve))));
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it('queues the checks made while the agent restarts and answers them from the next agent (200: the container runs)', async () => {
    const port = await freePort();
    // The agent's own listen address is another free port: with a socket passed, it is not used.
    const config = writeConfig(await freePort(), appPort);
    const run = supervise(config, port);
    children.push(run.child);
    // systemd-socket-activate starts the command at the first connection: this check waits for the agent.
    const firstCheck = await waitForListening(port).then(() => check(port));
    expect(firstCheck.outcome).toBe('200');
    await run.waitFor(() => run.events.some((e) => e.kind === 'pid'), 10_000);

    const { all, gap } = await restartUnderChecks(run, port);
    expect(run.listeningAtMs.length, JSON.stringify(run.events)).toBe(2);
    // Every check was answered, and the container runs and serves: 200 each time.
    expect(all.filter((p) => p.outcome !== '200')).toEqual([]);
    // Some were made while no agent process ran at all.
    expect(gap.length).toBeGreaterThan(0);
    stopGroup(run.child);
  }, 60_000);

  it('without the inherited socket, the same restart refuses checks (the problem socket activation solves)', async () => {
    const port = await freePort();
    const config = writeConfig(port, appPort);
    const run = supervise(config, undefined);
    children.push(run.child);
    await run.waitFor(() => run.listeningAtMs.length >= 1, 20_000);
    const { gap } = await restartUnderChecks(run, port);
    expect(gap.length).toBeGreaterThan(0);
    expect(gap.map((p) => p.outcome)).toContain('ECONNREFUSED');
    stopGroup(run.child);
  }, 60_000);
});

/** systemd-socket-activate listens before it starts anything: wait for its socket (a bare TCP connect would start the agent, which is fine). */
async function waitForListening(port: number): Promise<void> {
  const { connect } = await import('node:net');
  const deadline = Date.now() + 10_000;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
