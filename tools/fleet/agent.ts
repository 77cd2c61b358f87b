/**
 * Runs the real `baton agent` (the built `dist/cli/baton.js`, so `npm run build` first) as a child
 * process for integration and end-to-end tests, and writes realistic agent configs for a simulated
 * host (its own dockerd, its own 127.0.0.x address).
 *
 *   const file = await writeAgentConfig({ nodeId: 'node-1', hostAddress: '127.0.0.2',
 *     coordinatorUrl: coordinator.url, dockerSocket: host.socketPath, registryHost: registry.host });
 *   const agent = await spawnAgentProcess({ configFile: file.path });
 *   await agent.waitForLine((l) => l.msg === 'agent running', 30_000);
 *   ...
 *   await agent.kill('SIGTERM'); // resolves with the exit code
 *
 * Every process spawned here is SIGKILLed when the test process exits, and `stopAllAgentProcesses()`
 * stops the ones still running (for afterAll).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect as connectTcp } from 'node:net';
import { constants as osConstants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { stringify } from 'yaml';
import { batonCli } from './coordinator.js';
import { testAppPaths, testAppImage } from './images.js';
import { freePort } from './registry.js';

/** One pino line of the agent, parsed (`msg`, `level` as a label, `step`, `service`...). */
export type AgentLogLine = Record<string, unknown> & { msg?: string; level?: string };

/** A service entry of the agent config, as written to the file (before schema defaults). */
export type ServiceConfigInput = Record<string, unknown>;

export interface AgentConfigOptions {
  /** The node id (also used for APP_NODE in the app container). */
  nodeId: string;
  /** The simulated host's loopback address (127.0.0.x): readiness and the app listen there. */
  hostAddress: string;
  /** One or more coordinator base URLs. */
  coordinatorUrl: string | string[];
  /** The host's dockerd socket (TestDockerd.socketPath). */
  dockerSocket: string;
  /** `127.0.0.1:<port>` of the test registry; the service follows `<registryHost>/testapp:<tag>`. */
  registryHost: string;
  /** Tag followed; default `latest`. Ignored when `image` is given. */
  tag?: string;
  /** Image followed, overriding `<registryHost>/testapp:<tag>`. */
  image?: string;
  /** Group of the `app` service; default `app`. */
  group?: string;
  /** Container name of the service; default `app`. */
  containerName?: string;
  /** Port the app listens on, on hostAddress; default a free one. */
  appPort?: number;
  /** Port of the readiness endpoint, on hostAddress; default a free one. */
  readinessPort?: number;
  /** Where the config file and (by default) the state dir go; default a fresh temp dir. */
  dir?: string;
  /** Default `<dir>/state`. */
  stateDir?: string;
  /** Poll schedule; default every 2 s with 300 ms splay. */
  cron?: string;
  splayMs?: number;
  /** Coordinator token (agent or join token). */
  token?: string;
  /** Default `debug` (the `polled` line is debug). */
  logLevel?: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** Merged over the generated `app` service (shallow; `health` and `env` are merged one level deeper). */
  service?: ServiceConfigInput;
  /** More services, written as given, after `app`. */
  extraServices?: ServiceConfigInput[];
  /** Merged over the top level of the generated config (e.g. `registry`, `docker`). */
  overrides?: Record<string, unknown>;
  /** File format; default `yaml`. */
  format?: 'yaml' | 'json';
}

export interface AgentConfigFile {
  /** Path of the written config file. */
  path: string;
  /** Folder of the config file (removed by `remove()` when the helper created it). */
  dir: string;
  /** The config as written (raw, before schema defaults). */
  config: Record<string, unknown>;
  nodeId: string;
  hostAddress: string;
  stateDir: string;
  containerName: string;
  /** `<hostAddress>:<port>` the readiness endpoint listens on. */
  readinessListen: string;
  /** `http://<hostAddress>:<port>/ready/<containerName>` */
  readinessUrl: string;
  appPort: number;
  /** `http://<hostAddress>:<appPort>`: the app container's base URL. */
  appUrl: string;
  /** The image (by tag) the service follows. */
  image: string;
  /** Removes the folder when the helper created it. */
  remove(): Promise<void>;
}

/**
 * Writes an agent config for one simulated host with one service `app`: the test app image by tag,
 * host networking, APP_ADDR/APP_PORT on the host's address, an HTTP health check on
 * /cgi-bin/health with short timings, short drain and readmit times.
 */
export async function writeAgentConfig(options: AgentConfigOptions): Promise<AgentConfigFile> {
  const created = options.dir === undefined;
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), `baton-agent-${safe(options.nodeId)}-`)));
  const stateDir = options.stateDir ?? join(dir, 'state');
  const address = options.hostAddress;
  const [appPort, readinessPort] = await Promise.all([
    options.appPort ?? freePort(address),
    options.readinessPort ?? freePort(address),
  ]);
  const containerName = options.containerName ?? 'app';
  const image = options.image ?? testAppImage(options.registryHost, options.tag ?? 'latest');
  const readinessListen = `${address}:${readinessPort}`;
  const appUrl = `http://${address}:${appPort}`;

  const baseService: ServiceConfigInput = {
    group: options.group ?? 'app',
    image,
    containerName,
    env: { APP_ADDR: address, APP_PORT: String(appPort), APP_NODE: options.nodeId, APP_GRACE_SECONDS: '2' },
    health: {
      http: { url: `${appUrl}${testAppPaths.health}`, timeoutMs: 1_000 },
      intervalMs: 300,
      idleIntervalMs: 2_000,
      consecutivePasses: 2,
      deadlineMs: 8_000,
      minHealthyMs: 1_000,
    },
    networkMode: 'host',
    restartPolicy: 'unless-stopped',
    stopTimeoutSeconds: 5,
    drainSeconds: 1,
    readmitSeconds: 1,
  };
  const override = options.service ?? {};
  const service: ServiceConfigInput = {
    ...baseService,
    ...override,
    env: { ...(baseService.env as object), ...((override.env as object | undefined) ?? {}) },
    health: { ...(baseService.health as object), ...((override.health as object | undefined) ?? {}) },
  };

  const config: Record<string, unknown> = {
    nodeId: options.nodeId,
    host: address,
    coordinator: {
      urls: Array.isArray(options.coordinatorUrl) ? options.coordinatorUrl : [options.coordinatorUrl],
      requestTimeoutMs: 3_000,
      ...(options.token !== undefined ? { token: options.token } : {}),
    },
    docker: { socketPath: options.dockerSocket, requestTimeoutMs: 60_000 },
    registry: { requestTimeoutMs: 5_000 },
    schedule: { cron: options.cron ?? '*/2 * * * * *', splayMs: options.splayMs ?? 300 },
    readiness: { listen: readinessListen },
    stateDir,
    logLevel: options.logLevel ?? 'debug',
    services: [service, ...(options.extraServices ?? [])],
    ...options.overrides,
  };

  const format = options.format ?? 'yaml';
  const path = join(dir, format === 'yaml' ? 'agent.yaml' : 'agent.json');
  await writeFile(path, format === 'yaml' ? stringify(config) : `${JSON.stringify(config, null, 2)}\n`);
  return {
    path,
    dir,
    config,
    nodeId: options.nodeId,
    hostAddress: address,
    stateDir,
    containerName,
    readinessListen,
    readinessUrl: `http://${readinessListen}/ready/${containerName}`,
    appPort,
    appUrl,
    image,
    remove: async () => {
      if (created) await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface SpawnAgentOptions {
  /** An existing config file (e.g. from writeAgentConfig). */
  configFile?: string;
  /** Or a config object, written as JSON to a temp dir. */
  config?: unknown;
  /** Extra environment (BATON_*); the child gets only PATH plus these. */
  environment?: Record<string, string>;
  /** Node flags before the script (e.g. `--cpu-prof`, which NODE_OPTIONS refuses). */
  execArgv?: string[];
  /** Prefix for echoing the agent's lines to the test's stdout; nothing is echoed when unset (or env BATON_TEST_ECHO). */
  echo?: string;
}

export interface AgentExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface AgentProcess {
  pid: number;
  process: ChildProcess;
  configFile: string;
  /** Every stdout line that parsed as JSON, in order. */
  lines: AgentLogLine[];
  /** Every line of stdout and stderr as text, in order (non-JSON output, e.g. config errors, is only here). */
  output: string[];
  /** stderr lines only. */
  stderr: string[];
  /** The number of parsed lines so far: pass as `after` to wait only for lines written from now on. */
  mark(): number;
  /**
   * Resolves with the first parsed line (at index ≥ `after`, default 0) matching `predicate`;
   * rejects after `timeoutMs` or when the process exits first, with the last lines in the message.
   */
  waitForLine(predicate: (line: AgentLogLine) => boolean, timeoutMs?: number, options?: { after?: number }): Promise<AgentLogLine>;
  /** Resolves when the process has exited. */
  exited: Promise<AgentExit>;
  /** The exit code once exited (null while running or when killed by a signal). */
  readonly exitCode: number | null;
  readonly running: boolean;
  /** Sends `signal` (if still running) and resolves with the exit code (null when killed by a signal). */
  kill(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
  /** The last `count` output lines, for failure messages. */
  tail(count?: number): string;
}

const runningAgents = new Set<AgentProcess>();

/** Spawns `node dist/cli/baton.js agent --config <file>`; resolves at once (not waiting for readiness). */
export async function spawnAgentProcess(options: SpawnAgentOptions): Promise<AgentProcess> {
  let configFile = options.configFile;
  let tempDir: string | undefined;
  if (configFile === undefined) {
    if (options.config === undefined) throw new Error('spawnAgentProcess: give configFile or config');
    tempDir = await mkdtemp(join(tmpdir(), 'baton-agent-cfg-'));
    configFile = join(tempDir, 'agent.json');
    await writeFile(configFile, `${JSON.stringify(options.config, null, 2)}\n`);
  }
  const child = spawn(process.execPath, [...(options.execArgv ?? []), batonCli, 'agent', '--config', configFile], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...options.environment },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const handle = agentHandle({
    pid: child.pid ?? -1,
    process: child,
    configFile,
    echo: options.echo ?? (process.env.BATON_TEST_ECHO ? `[${configFile}]` : undefined),
    signal: (signal) => child.kill(signal),
    onEnded: () => {
      if (tempDir !== undefined) void rm(tempDir, { recursive: true, force: true });
    },
  });
  let stdoutDone!: () => void;
  let stderrDone!: () => void;
  const streamsDone = Promise.all([
    new Promise<void>((resolve) => (stdoutDone = resolve)),
    new Promise<void>((resolve) => (stderrDone = resolve)),
  ]);
  child.once('exit', (code, signal) => {
    // Let the last lines arrive before anyone looks at them.
    void streamsDone.then(() => handle.ended({ code, signal }));
  });
  child.once('error', (error) => {
    handle.output.push(`spawn error: ${error.message}`);
  });
  const stdoutReader = createInterface({ input: child.stdout });
  stdoutReader.on('line', (text) => handle.stdoutLine(text));
  stdoutReader.once('close', () => stdoutDone());
  const stderrReader = createInterface({ input: child.stderr });
  stderrReader.on('line', (text) => handle.stderrLine(text));
  stderrReader.once('close', () => stderrDone());
  return handle.agent;
}

interface AgentHandle {
  agent: AgentProcess;
  output: string[];
  stdoutLine(text: string): void;
  stderrLine(text: string): void;
  /** The process has exited and its last lines are in. */
  ended(exit: AgentExit): void;
}

/**
 * The AgentProcess of one agent process, fed its lines and its end by whoever runs it: a direct
 * child (spawnAgentProcess) or a socket-activation supervisor (startSocketActivatedAgents).
 */
function agentHandle(source: {
  pid: number;
  process: ChildProcess;
  configFile: string;
  echo: string | undefined;
  signal: (signal: NodeJS.Signals) => void;
  onEnded?: () => void;
}): AgentHandle {
  const { echo, configFile } = source;
  const lines: AgentLogLine[] = [];
  const output: string[] = [];
  const stderr: string[] = [];
  const waiters = new Set<() => void>();
  const notify = (): void => {
    for (const waiter of [...waiters]) waiter();
  };
  let exit: AgentExit | undefined;
  const onProcessExit = (): void => {
    if (exit === undefined) source.signal('SIGKILL');
  };
  process.once('exit', onProcessExit);
  let resolveExited!: (exit: AgentExit) => void;
  const exited = new Promise<AgentExit>((resolve) => (resolveExited = resolve));
  const tail = (count = 30): string => output.slice(-count).join('\n');

  const agent: AgentProcess = {
    pid: source.pid,
    process: source.process,
    configFile,
    lines,
    output,
    stderr,
    mark: () => lines.length,
    waitForLine(predicate, timeoutMs = 30_000, waitOptions = {}) {
      let next = waitOptions.after ?? 0;
      return new Promise<AgentLogLine>((resolve, reject) => {
        const state: { timer?: NodeJS.Timeout } = {};
        const check = (): void => {
          for (; next < lines.length; next += 1) {
            const line = lines[next] as AgentLogLine;
            if (predicate(line)) {
              finish();
              resolve(line);
              return;
            }
          }
          if (exit !== undefined) {
            finish();
            reject(new Error(`agent exited (code ${String(exit.code)}, signal ${String(exit.signal)}) before the line came:\n${tail()}`));
          }
        };
        const finish = (): void => {
          waiters.delete(check);
          clearTimeout(state.timer);
        };
        state.timer = setTimeout(() => {
          finish();
          reject(new Error(`no matching agent line within ${timeoutMs} ms; last lines:\n${tail()}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    exited,
    get exitCode() {
      return exit?.code ?? null;
    },
    get running() {
      return exit === undefined;
    },
    async kill(signal = 'SIGTERM', timeoutMs = 60_000) {
      if (exit === undefined) source.signal(signal);
      let timer: NodeJS.Timeout | undefined;
      const result = await Promise.race([
        exited,
        new Promise<'timeout'>((resolve) => {
          timer = setTimeout(() => resolve('timeout'), timeoutMs);
        }),
      ]);
      clearTimeout(timer);
      if (result === 'timeout') {
        source.signal('SIGKILL');
        await exited;
        throw new Error(`agent did not exit within ${timeoutMs} ms of ${signal}; killed it:\n${tail()}`);
      }
      return result.code;
    },
    tail,
  };
  runningAgents.add(agent);
  return {
    agent,
    output,
    stdoutLine(text) {
      output.push(text);
      if (echo) process.stdout.write(`${echo} ${text}\n`);
      try {
        const parsed: unknown = JSON.parse(text);
        if (typeof parsed === 'object' && parsed !== null) lines.push(parsed as AgentLogLine);
      } catch {
        // Not a log line.
      }
      notify();
    },
    stderrLine(text) {
      output.push(text);
      stderr.push(text);
      if (echo) process.stdout.write(`${echo} (stderr) ${text}\n`);
      notify();
    },
    ended(end) {
      if (exit !== undefined) return;
      exit = end;
      process.removeListener('exit', onProcessExit);
      runningAgents.delete(agent);
      source.onEnded?.();
      notify();
      resolveExited(exit);
    },
  };
}

// ---- Socket activation: the readiness socket held across agent restarts, as systemd does

/** Debian's `systemd-socket-activate` (package systemd), or undefined when it is not installed. */
export const SOCKET_ACTIVATE_BINARY = ['/usr/bin/systemd-socket-activate', '/bin/systemd-socket-activate'].find((path) => existsSync(path));

export interface SocketActivatedAgentOptions {
  /** The agent's config file. */
  configFile: string;
  /** `host:port` systemd-socket-activate listens on and passes to every agent (usually the config's readiness.listen). */
  listen: string;
  /** Extra environment (BATON_*); the agents get only PATH plus these (and LISTEN_PID/LISTEN_FDS). */
  environment?: Record<string, string>;
  echo?: string;
}

/**
 * One simulated host's `baton-agent.socket` plus `baton-agent.service`: `systemd-socket-activate -l
 * <listen>` holds the readiness socket for the supervisor's whole life and runs a small shell
 * supervisor (in place of systemd's service manager) that starts one agent process per `start()`,
 * passing the socket as fd 3 with LISTEN_FDS=1 and LISTEN_PID set to that agent's own pid (the
 * agent is exec'd in a subshell, so the pid is its own). While no agent runs, connections to the
 * socket wait in its queue and are answered by the next agent, exactly as under systemd.
 *
 * Each agent is an AgentProcess like spawnAgentProcess's (`process` is the supervisor's child:
 * the agent itself is its grandchild); `kill(signal)` signals the agent only, never the socket.
 * `stop()` ends the supervisor and whatever agent runs.
 */
export interface SocketActivatedAgents {
  /** systemd-socket-activate's pid (the supervisor shell after its exec). */
  pid: number;
  listen: string;
  /** Starts the next agent process (the previous one must have exited); resolves once it runs. */
  start(): Promise<AgentProcess>;
  /** The supervisor's own output lines (systemd-socket-activate's and the markers). */
  supervisorLines(): string[];
  stop(): Promise<void>;
}

const markerPrefix = '@@baton-supervisor ';

export async function startSocketActivatedAgents(options: SocketActivatedAgentOptions): Promise<SocketActivatedAgents> {
  if (SOCKET_ACTIVATE_BINARY === undefined) throw new Error('systemd-socket-activate is not installed (Debian package systemd)');
  const [host, portText] = [options.listen.slice(0, options.listen.lastIndexOf(':')), options.listen.slice(options.listen.lastIndexOf(':') + 1)];
  const port = Number(portText);
  // Reads one command a line on stdin: `start` runs one agent in the foreground, then reports its end.
  // Markers go to stdout and stderr both, so the reader knows both streams of an agent are complete.
  const script = String.raw`
node="$1"; cli="$2"; config="$3"
while IFS= read -r command; do
  case "$command" in
    start)
      ( echo "${markerPrefix}pid $BASHPID"; export LISTEN_PID=$BASHPID LISTEN_FDS=1; exec "$node" "$cli" agent --config "$config" </dev/null )
      code=$?
      echo "${markerPrefix}exited $code"; echo "${markerPrefix}exited $code" >&2
      ;;
    exit) exit 0 ;;
  esac
done
`;
  const environment = { PATH: process.env.PATH ?? '/usr/bin:/bin', ...options.environment };
  const child = spawn(
    SOCKET_ACTIVATE_BINARY,
    [
      '-l',
      options.listen,
      ...Object.entries(environment).flatMap(([name, value]) => ['-E', `${name}=${value}`]),
      '/bin/bash',
      '-c',
      script,
      'baton-agent-supervisor',
      process.execPath,
      batonCli,
      options.configFile,
    ],
    { stdio: ['pipe', 'pipe', 'pipe'], detached: true, env: environment },
  );
  const pid = child.pid ?? -1;
  const killGroup = (): void => {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // Gone.
    }
  };
  process.once('exit', killGroup);
  const supervisorLines: string[] = [];
  let current: AgentHandle | undefined;
  let pendingPid: ((pid: number) => void) | undefined;
  let endMarkers = 0;
  let exitCode: number | undefined;
  const onMarker = (text: string): void => {
    const words = text.slice(markerPrefix.length).split(' ');
    if (words[0] === 'pid') {
      pendingPid?.(Number(words[1]));
      pendingPid = undefined;
    } else if (words[0] === 'exited') {
      exitCode = Number(words[1]);
      endMarkers += 1;
      if (endMarkers === 2 && current !== undefined) {
        // bash reports a death by signal N as 128 + N.
        const signalName =
          exitCode > 128 ? ((Object.entries(osConstants.signals).find(([, n]) => n === exitCode! - 128)?.[0] as NodeJS.Signals | undefined) ?? null) : null;
        current.ended(signalName !== null ? { code: null, signal: signalName } : { code: exitCode, signal: null });
      }
    }
  };
  let listening!: () => void;
  const listeningNow = new Promise<void>((resolve) => (listening = resolve));
  createInterface({ input: child.stdout! }).on('line', (text) => {
    if (text.startsWith(markerPrefix)) {
      supervisorLines.push(text);
      onMarker(text);
    } else current?.stdoutLine(text);
  });
  createInterface({ input: child.stderr! }).on('line', (text) => {
    if (text.startsWith(markerPrefix)) {
      supervisorLines.push(text);
      onMarker(text);
    } else if (current === undefined || !current.agent.running || /^(Listening on|Communication attempt|Execing) /.test(text)) {
      supervisorLines.push(text);
      if (text.startsWith('Listening on')) listening();
    } else current.stderrLine(text);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void exited.then(() => {
    process.removeListener('exit', killGroup);
    current?.ended({ code: null, signal: 'SIGKILL' });
    listening();
  });

  // systemd-socket-activate binds, then waits for a first connection before it execs the
  // supervisor: make one (the first agent accepts it and sees it closed).
  await Promise.race([listeningNow, new Promise((r) => setTimeout(r, 10_000))]);
  if (child.exitCode !== null || child.signalCode !== null) {
    throw new Error(`systemd-socket-activate exited at start: ${supervisorLines.join('\n')}`);
  }
  await new Promise<void>((resolve) => {
    const socket = connectTcp({ host, port }, () => {
      socket.end();
      resolve();
    });
    socket.on('error', () => resolve());
  });

  const start = async (): Promise<AgentProcess> => {
    if (current?.agent.running) throw new Error('startSocketActivatedAgents: an agent is still running');
    if (child.exitCode !== null || child.signalCode !== null) throw new Error('the socket-activation supervisor has exited');
    endMarkers = 0;
    const agentPid = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the supervisor did not start an agent within 10 s: ${supervisorLines.slice(-10).join('\n')}`)), 10_000);
      pendingPid = (p) => {
        clearTimeout(timer);
        resolve(p);
      };
      child.stdin!.write('start\n');
    });
    current = agentHandle({
      pid: agentPid,
      process: child,
      configFile: options.configFile,
      echo: options.echo ?? (process.env.BATON_TEST_ECHO ? `[${options.configFile}]` : undefined),
      signal: (signal) => {
        try {
          process.kill(agentPid, signal);
        } catch {
          // Already gone.
        }
      },
    });
    return current.agent;
  };

  return {
    pid,
    listen: options.listen,
    start,
    supervisorLines: () => [...supervisorLines],
    stop: async () => {
      killGroup();
      await exited;
    },
  };
}

/** SIGKILLs every agent process this test process spawned that is still running. */
export async function stopAllAgentProcesses(): Promise<void> {
  await Promise.allSettled([...runningAgents].map((agent) => agent.kill('SIGKILL', 10_000)));
}

/** Predicates for common agent lines. */
export const agentLines = {
  running: (line: AgentLogLine) => line.msg === 'agent running',
  /** A step's one line at its end (`step: ok|failed|...`), for `step` and optionally `outcome`. */
  step: (step: string, outcome?: string) => (line: AgentLogLine) =>
    line.step === step && 'durationMs' in line && typeof line.outcome === 'string' && (outcome === undefined || line.outcome === outcome),
  /** The agent's line after an update flow returned (`outcome`: updated, rolled-back, skipped, aborted...). */
  updateFinished: (outcome?: string) => (line: AgentLogLine) =>
    line.msg === 'update finished' && (outcome === undefined || line.outcome === outcome),
  polled: (line: AgentLogLine) => line.msg === 'polled',
  /**
   * The Docker runtime's line after an engine call (`stopped container`, `renamed container`,
   * `created container`, `started container`, `removed container`, `pulled image`): the step lines
   * come at a step's end, these inside it (e.g. `started container` of the new one = health is next).
   */
  docker: (msg: string, container?: string) => (line: AgentLogLine) =>
    line.msg === msg && (container === undefined || line.container === container),
};

function safe(text: string): string {
  return text.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 40);
}
