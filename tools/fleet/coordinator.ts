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
import { createHttpServer } from '../../coordinator/http/server.js';
import { CoordinatorService } from '../../coordinator/service/service.js';
import { openSqliteStore } from '../../coordinator/store/sqlite.js';

// Two levels up from tools/fleet: the repository, or build/ when running the compiled tools (the demo, benchmarks).
const twoUp = fileURLToPath(new URL('../../', import.meta.url)).replace(/\/$/, '');
export const repositoryRoot = basename(twoUp) === 'build' ? dirname(twoUp) : twoUp;
export const batonCli = join(repositoryRoot, 'dist/cli/baton.js');

export interface InProcessCoordinator {
  url: string;
  dataFile: string;
  service: CoordinatorService;
  config: CoordinatorConfig;
  /** Closes HTTP, flushes and closes the store; keeps the data file unless `removeData`. */
  stop(options?: { removeData?: boolean }): Promise<void>;
}

/** A real coordinator (real SQLite file, real HTTP on 127.0.0.1) inside the test process. */
export async function startInProcessCoordinator(
  options: { config?: Record<string, unknown>; clock?: Clock; logger?: Logger; dataFile?: string } = {},
): Promise<InProcessCoordinator> {
  const directory = options.dataFile ? undefined : mkdtempSync(join(tmpdir(), 'baton-coord-'));
  const dataFile = options.dataFile ?? join(directory as string, 'baton.db');
  const config = coordinatorConfigSchema.parse({ listen: '127.0.0.1:0', dataFile, ...options.config });
  const logger = options.logger ?? silentLogger();
  const store = openSqliteStore(dataFile, { logger });
  const service = new CoordinatorService({
    config,
    store,
    clock: options.clock ?? systemClock,
    logger,
    newId: randomUUID,
    heartbeatFlushIntervalMs: 200,
    expirySweepIntervalMs: 100,
  });
  await service.start();
  const app = createHttpServer({ service, auth: config.auth, logger, bodyLimitBytes: config.bodyLimitBytes });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    dataFile,
    service,
    config,
    stop: async ({ removeData = false } = {}) => {
      await app.close();
      await service.stop();
      await store.close();
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
