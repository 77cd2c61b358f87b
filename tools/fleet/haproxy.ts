/**
 * A real HAProxy 2.6 (Debian's `haproxy`) in front of the test fleet's apps, for end-to-end tests.
 *
 * The config is strict on purpose, so that only correct draining keeps every request whole:
 *   retries 0, no option redispatch   a request sent to a server that refuses or drops it fails,
 *                                     HAProxy never hides it by trying another server;
 *   option httpchk + http-check send  the active health check goes to each node's AGENT readiness
 *                                     endpoint (`GET /ready/<service>`), not to the app: a draining
 *                                     node answers 503 there while its app still serves;
 *   check addr <a> port <p> inter 250ms fall 2 rise 2
 *                                     per server: the readiness endpoint's address and port; two
 *                                     failed checks (≈0.5 s) take it out, two passes put it back.
 * The frontend listens on 127.0.0.1:<free port>. A stats socket (`level admin`) in the temp dir
 * answers `show stat`, from which `serverStates()` reads each server's UP/DOWN status, and
 * `sampleServers()` (haproxy-stats.ts) records those states every few milliseconds during a scenario, to count the
 * servers out of service at once from HAProxy's own view. Every
 * request is logged (`option httplog`, to stdout); `log()` returns the lines, so a failed request
 * can be matched with the server and termination state HAProxy saw.
 *
 * Runs `haproxy -f <cfg> -db` as a child (foreground); `stop()` ends it (SIGUSR1 soft stop would wait
 * for connections: SIGTERM is immediate). The child is SIGKILLed if the test process exits first.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseShowStat, statsCommand, type ServerState } from './haproxy-stats.js';
import { freePort } from './registry.js';

export const HAPROXY_BINARY = '/usr/sbin/haproxy';

export interface HaproxyBackend {
  /** Server name in HAProxy (e.g. the node id). */
  name: string;
  /** Where the app listens: 127.0.0.x and its port. */
  appAddress: string;
  appPort: number;
  /** The node's agent readiness endpoint. */
  readinessAddress: string;
  readinessPort: number;
  /** The service name checked: `GET /ready/<service>`. Every backend must check the same service. */
  service: string;
}

export interface StartHaproxyOptions {
  backends: HaproxyBackend[];
  /** Frontend port on 127.0.0.1; default a free one. */
  listenPort?: number;
  /** Health check interval, default 250 ms. */
  checkIntervalMs?: number;
  fall?: number;
  rise?: number;
  /**
   * `timeout check`, default 1 s. Under socket activation a check made while the agent restarts
   * waits in the socket's queue: give it longer than a restart (the README's 5 s).
   */
  checkTimeoutMs?: number;
  /** `timeout server` (longest request HAProxy waits for), default 30 s. */
  serverTimeoutMs?: number;
  /**
   * The check's URI; default `/ready/<service>` (the agent's readiness endpoint). A balancer
   * without Baton checks the app itself: point readinessAddress/Port at the app and give its health path.
   */
  checkUri?: string;
}

export interface RunningHaproxy {
  /** `http://127.0.0.1:<port>` */
  url: string;
  port: number;
  dir: string;
  configPath: string;
  pid: number;
  config: string;
  /** Each backend server's status from the stats socket. */
  serverStates(): Promise<ServerState[]>;
  /** Resolves when every server is `UP`; rejects after `timeoutMs` with the states seen last. */
  waitAllUp(timeoutMs?: number): Promise<void>;
  /** Resolves when server `name` has status `status` (exactly, e.g. `UP` or `DOWN`). */
  waitServer(name: string, status: 'UP' | 'DOWN', timeoutMs?: number): Promise<void>;
  /** One raw stats socket command (e.g. `show stat`, `show servers state`). */
  command(text: string): Promise<string>;
  /** HAProxy's own output, one line each (request log lines, server state changes, warnings). */
  log(): string[];
  stop(): Promise<void>;
}

/** The HAProxy config for these backends (exported for tests and documentation). */
export function haproxyConfig(options: StartHaproxyOptions & { listenPort: number; socketPath: string }): string {
  const services = new Set(options.backends.map((b) => b.service));
  if (services.size !== 1) throw new Error(`startHaproxy: every backend must check the same service, got ${[...services].join(', ')}`);
  const [service] = services;
  for (const backend of options.backends) {
    for (const address of [backend.appAddress, backend.readinessAddress]) {
      if (!/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(address)) throw new Error(`startHaproxy: ${address} is not a loopback address`);
    }
    if (!/^[A-Za-z0-9_.-]+$/.test(backend.name)) throw new Error(`startHaproxy: bad server name ${JSON.stringify(backend.name)}`);
  }
  if (!/^[A-Za-z0-9_.-]+$/.test(service ?? '')) throw new Error(`startHaproxy: bad service name ${JSON.stringify(service)}`);
  const checkUri = options.checkUri ?? `/ready/${service}`;
  if (!/^\/[A-Za-z0-9_./?=&-]*$/.test(checkUri)) throw new Error(`startHaproxy: bad check URI ${JSON.stringify(checkUri)}`);
  const inter = options.checkIntervalMs ?? 250;
  const lines = [
    'global',
    `  stats socket ${options.socketPath} mode 600 level admin`,
    '  maxconn 4096',
    '  log stdout format raw local0 info',
    '',
    'defaults',
    '  mode http',
    '  log global',
    '  option httplog',
    '  option dontlognull',
    // Only correct draining keeps requests whole: no second chance on another server.
    '  retries 0',
    '  no option redispatch',
    '  timeout connect 2s',
    '  timeout client 30s',
    `  timeout server ${options.serverTimeoutMs ?? 30_000}ms`,
    `  timeout check ${options.checkTimeoutMs ?? 1_000}ms`,
    '',
    'frontend fe',
    `  bind 127.0.0.1:${options.listenPort}`,
    '  default_backend app',
    '',
    'backend app',
    '  balance roundrobin',
    '  option httpchk',
    `  http-check send meth GET uri ${checkUri} ver HTTP/1.1 hdr Host baton-haproxy`,
    '  http-check expect status 200',
    `  default-server inter ${inter}ms fall ${options.fall ?? 2} rise ${options.rise ?? 2}`,
    ...options.backends.map(
      (b) => `  server ${b.name} ${b.appAddress}:${b.appPort} check addr ${b.readinessAddress} port ${b.readinessPort}`,
    ),
    '',
  ];
  return lines.join('\n');
}

export async function startHaproxy(options: StartHaproxyOptions): Promise<RunningHaproxy> {
  if (options.backends.length === 0) throw new Error('startHaproxy: no backends');
  const dir = await mkdtemp(join(tmpdir(), 'baton-haproxy-'));
  const socketPath = join(dir, 'admin.sock');
  const configPath = join(dir, 'haproxy.cfg');
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt += 1) {
    const listenPort = options.listenPort ?? (await freePort());
    const config = haproxyConfig({ ...options, listenPort, socketPath });
    await writeFile(configPath, config);
    try {
      return await launch(dir, configPath, socketPath, listenPort, config);
    } catch (error) {
      lastError = error;
      if (options.listenPort !== undefined || !/address already in use|cannot bind/i.test(String(error))) break;
    }
  }
  await rm(dir, { recursive: true, force: true });
  throw lastError;
}

async function launch(dir: string, configPath: string, socketPath: string, port: number, config: string): Promise<RunningHaproxy> {
  const child: ChildProcess = spawn(HAPROXY_BINARY, ['-f', configPath, '-db'], {
    env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/bin' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  const collect = (line: string): void => {
    output.push(line);
    if (output.length > 200_000) output.splice(0, 50_000);
  };
  if (child.stdout) createInterface({ input: child.stdout }).on('line', collect);
  if (child.stderr) createInterface({ input: child.stderr }).on('line', collect);
  const onProcessExit = (): void => {
    child.kill('SIGKILL');
  };
  process.once('exit', onProcessExit);
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      process.removeListener('exit', onProcessExit);
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }
      await rm(dir, { recursive: true, force: true });
    })();
    return stopping;
  };

  const command = (text: string): Promise<string> => statsCommand(socketPath, text);
  const serverStates = async (): Promise<ServerState[]> => parseShowStat(await command('show stat'));

  const waitFor = async (what: string, done: (states: ServerState[]) => boolean, timeoutMs: number): Promise<void> => {
    const deadline = performance.now() + timeoutMs;
    let last: ServerState[] = [];
    let lastError: unknown;
    while (performance.now() < deadline) {
      if (child.exitCode !== null || child.signalCode !== null) break;
      try {
        last = await serverStates();
        if (done(last)) return;
      } catch (error) {
        lastError = error;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(
      `haproxy: ${what} not reached within ${timeoutMs} ms; servers: ${JSON.stringify(last)}` +
        `${lastError === undefined ? '' : `; last error: ${String(lastError)}`}\n${output.slice(-20).join('\n')}`,
    );
  };

  const running: RunningHaproxy = {
    url: `http://127.0.0.1:${port}`,
    port,
    dir,
    configPath,
    pid: child.pid ?? -1,
    config,
    serverStates,
    waitAllUp: (timeoutMs = 30_000) => waitFor('every server UP', (states) => states.length > 0 && states.every((s) => s.status === 'UP'), timeoutMs),
    waitServer: (name, status, timeoutMs = 30_000) =>
      waitFor(`${name} ${status}`, (states) => states.some((s) => s.name === name && s.status === status), timeoutMs),
    command,
    log: () => [...output],
    stop,
  };

  // Up when the stats socket answers and the frontend accepts connections.
  const deadline = performance.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      await stop();
      throw new Error(`haproxy exited (${String(child.exitCode ?? child.signalCode)}) at start:\n${output.join('\n')}`);
    }
    const ready = (await command('show info').then(() => true, () => false)) && (await canConnect('127.0.0.1', port));
    if (ready) return running;
    if (performance.now() > deadline) {
      await stop();
      throw new Error(`haproxy did not start within 10 s:\n${output.join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.setTimeout(1_000);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(false));
  });
}
