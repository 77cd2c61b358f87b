import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { systemClock, type Clock } from '../../shared/clock.js';
import { coordinatorConfigSchema, type CoordinatorConfig } from '../../shared/config/coordinator.js';
import { silentLogger, type Logger } from '../../shared/logger.js';
import { systemRandom, type RandomSource } from '../../shared/random.js';
import { buildCoordinator } from '../../coordinator/build.js';
import type { Notifier } from '../../coordinator/notifications/notifier.js';
import type { CoordinatorService } from '../../coordinator/service/service.js';

// Two levels up from tools/fleet: the repository, or build/ when running the compiled tools (the demo, benchmarks).
const twoUp = fileURLToPath(new URL('../../', import.meta.url)).replace(/\/$/, '');
export const repositoryRoot = basename(twoUp) === 'build' ? dirname(twoUp) : twoUp;
export const batonCli = join(repositoryRoot, 'dist/cli/baton.js');

export interface InProcessCoordinator {
  url: string;
  dataFile: string;
  service: CoordinatorService;
  config: CoordinatorConfig;
  /** Sends the webhooks of `config.notifications`; undefined when none is configured. */
  notifier: Notifier | undefined;
  /**
   * Closes HTTP, gives queued notifications `notificationGraceMs` (default 2 s), flushes and
   * closes the store; keeps the data file unless `removeData`.
   */
  stop(options?: { removeData?: boolean; notificationGraceMs?: number }): Promise<void>;
}

/** A real coordinator (real SQLite file, real HTTP on 127.0.0.1) inside the test process. */
export async function startInProcessCoordinator(
  options: { config?: Record<string, unknown>; clock?: Clock; random?: RandomSource; logger?: Logger; dataFile?: string } = {},
): Promise<InProcessCoordinator> {
  const directory = options.dataFile ? undefined : mkdtempSync(join(tmpdir(), 'baton-coord-'));
  const dataFile = options.dataFile ?? join(directory as string, 'baton.db');
  const config = coordinatorConfigSchema.parse({ listen: '127.0.0.1:0', dataFile, ...options.config });
  const coordinator = await buildCoordinator(
    config,
    { clock: options.clock ?? systemClock, random: options.random ?? systemRandom, logger: options.logger ?? silentLogger(), newId: randomUUID },
    { heartbeatFlushIntervalMs: 200, expirySweepIntervalMs: 100 },
  );
  const { port } = await coordinator.listen({ host: '127.0.0.1', port: 0 });
  return {
    url: `http://127.0.0.1:${port}`,
    dataFile,
    service: coordinator.service,
    config,
    notifier: coordinator.notifier,
    stop: async ({ removeData = false, notificationGraceMs } = {}) => {
      await coordinator.close(notificationGraceMs === undefined ? {} : { notificationGraceMs });
      if (removeData && directory) rmSync(directory, { recursive: true, force: true });
    },
  };
}

export interface CoordinatorProcess {
  url: string;
  process: ChildProcess;
  /** Every line the process wrote, stdout and stderr. */
  lines: string[];
  kill(signal: NodeJS.Signals): Promise<number | null>;
}

/** The built `baton coordinator` as a separate process (needs `npm run build`), for crash tests. */
export async function spawnCoordinatorProcess(options: {
  dataFile: string;
  port?: number;
  environment?: Record<string, string>;
  configFile?: string;
}): Promise<CoordinatorProcess> {
  const port = options.port ?? 0;
  const args = [batonCli, 'coordinator', ...(options.configFile ? ['--config', options.configFile] : [])];
  const child = spawn(process.execPath, args, {
    env: {
      PATH: process.env.PATH ?? '',
      BATON_LISTEN: `127.0.0.1:${port}`,
      BATON_DATA: options.dataFile,
      ...options.environment,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const listening = new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      lines.push(line);
      const match = /"listen":"([^"]+)"/.exec(line);
      if (match && line.includes('coordinator listening')) resolve(`http://${match[1]}`);
    });
    createInterface({ input: child.stderr }).on('line', (line) => lines.push(line));
    void exited.then((code) => reject(new Error(`coordinator exited with ${code} before listening:\n${lines.join('\n')}`)));
  });
  let timer: NodeJS.Timeout | undefined;
  const url = await Promise.race([
    listening,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('coordinator did not start in 15 s')), 15_000);
    }),
  ]).finally(() => clearTimeout(timer));
  return {
    url,
    process: child,
    lines,
    kill: async (signal) => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
