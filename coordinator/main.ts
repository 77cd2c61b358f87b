import { randomUUID } from 'node:crypto';
import { resolve } from 'node:path';
import { systemClock } from '../shared/clock.js';
import { systemRandom } from '../shared/random.js';
import { loadConfig } from '../shared/config/load.js';
import { parseDaemonArgs } from '../shared/daemon-args.js';
import {
  coordinatorConfigSchema,
  coordinatorEnvironmentOverrides,
  type CoordinatorConfig,
} from '../shared/config/coordinator.js';
import { ConfigError, ExitCode } from '../shared/errors.js';
import { createLogger, type Logger } from '../shared/logger.js';
import { parseHostPort } from '../shared/host-port.js';
import { buildCoordinator, type Coordinator } from './build.js';
import { StoreUnwritableError } from './store/write-failure.js';
import { authIsConfigured, isLoopbackHost } from './http/auth.js';

const usage = `usage: baton coordinator [--config FILE]

Runs the coordinator: leases, rollouts, status page and HTTP API.
Settings come from FILE (YAML or JSON) and BATON_* environment variables.`;

/** Refuses an open coordinator anywhere but loopback: without tokens, anyone who reaches it could take leases. */
function checkExposure(config: CoordinatorConfig, logger: Logger): void {
  if (authIsConfigured(config.auth)) return;
  const { host } = parseHostPort(config.listen);
  if (!isLoopbackHost(host)) {
    throw new ConfigError('configuration', [
      {
        path: 'auth',
        message: `no tokens are configured, so the coordinator only listens on a loopback address (listen is ${config.listen}); set auth.agentTokens or auth.joinToken and auth.adminToken`,
      },
    ]);
  }
  logger.warn({ listen: config.listen }, 'no tokens configured: serving without authentication on loopback only');
}

export async function runCoordinator(argv: string[], environment: NodeJS.ProcessEnv): Promise<number> {
  const args = parseDaemonArgs(argv, usage);
  if (!args.run) return args.exitCode;
  const { configPath } = args;

  let config: CoordinatorConfig;
  const bootLogger = createLogger({ name: 'coordinator' });
  try {
    config = loadConfig(coordinatorConfigSchema, {
      ...(configPath !== undefined ? { path: configPath } : {}),
      environment,
      overrides: coordinatorEnvironmentOverrides,
    });
    checkExposure(config, bootLogger);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`baton coordinator: ${error.message}\n`);
      return ExitCode.config;
    }
    throw error;
  }

  const logger = createLogger({ name: 'coordinator', level: config.logLevel });
  let coordinator: Coordinator;
  try {
    coordinator = await buildCoordinator(config, { clock: systemClock, random: systemRandom, logger, newId: randomUUID }, { processMetrics: true });
  } catch (error) {
    // A database it cannot write (read-only file or mount, full disk): one line, and no start that would answer 500 to every write.
    if (error instanceof StoreUnwritableError) {
      process.stderr.write(`baton coordinator: ${error.message}\n`);
      return ExitCode.cantCreate;
    }
    throw error;
  }
  const { host, port } = await coordinator.listen();
  logger.info({ listen: `${host}:${port}`, dataFile: resolve(config.dataFile) }, 'coordinator listening');

  return new Promise<number>((resolveExit) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals): void => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, 'coordinator stopping');
      void (async () => {
        await coordinator.close();
        resolveExit(ExitCode.ok);
      })();
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
}
