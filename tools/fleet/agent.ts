/**
 * Runs the real `baton agent` (the built `dist/cli/baton.js`, so `npm run build` first) as a child
 * process for integration and end-to-end tests. Its config comes from agent-config.ts; under socket
 * activation, the process is started by socket-activation.ts and watched here all the same.
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
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { batonCli } from './coordinator.js';

/** One pino line of the agent, parsed (`msg`, `level` as a label, `step`, `service`...). */
export type AgentLogLine = Record<string, unknown> & { msg?: string; level?: string };

export interface SpawnAgentOptions {
  /** An existing config file (e.g. from writeAgentConfig in agent-config.ts). */
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

export interface AgentHandle {
  agent: AgentProcess;
  output: string[];
  stdoutLine(text: string): void;
  stderrLine(text: string): void;
  /** The process has exited and its last lines are in. */
  ended(exit: AgentExit): void;
}

/**
 * The AgentProcess of one agent process, fed its lines and its end by whoever runs it: a direct
 * child (spawnAgentProcess) or a socket-activation supervisor (startSocketActivatedAgents, socket-activation.ts).
 */
export function agentHandle(source: {
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
