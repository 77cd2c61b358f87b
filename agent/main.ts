// First: keeps dockerode's unused ssh2 and gRPC dependencies unloaded (agent/lean-modules.ts).
import './lean-modules.js';
import { readFileSync } from 'node:fs';
import { systemClock } from '../shared/clock.js';
import { parseDaemonArgs } from '../shared/daemon-args.js';
import type { AgentConfig } from '../shared/config/agent.js';
import { ConfigError, ExitCode } from '../shared/errors.js';
import { createLogger } from '../shared/logger.js';
import { systemRandom } from '../shared/random.js';
import { batonVersion } from '../shared/version.js';
import { Agent } from './agent.js';
import { fileLastKnownGoodStore } from './config/last-known-good.js';
import { loadAgentConfig } from './config/load.js';
import { recordStartupConfig } from './config/report.js';
import { decideStartupConfig, fileStartupFiles, type StartupConfig } from './config/startup.js';
import { createCoordinatorClient } from './coordinator/client.js';
import { createDockerRuntime } from './docker/runtime.js';
import { createHttpHealthProbe } from './health/http-probe.js';
import { createShellHookRunner } from './hooks/shell.js';
import { createLazyAgentMetrics } from './lazy-metrics.js';
import { createReadinessBoard } from './readiness/board.js';
import { liveProbes } from './readiness/probe.js';
import { createReadinessServer } from './readiness/server.js';
import { inheritedSockets, unsetListenEnvironment } from './readiness/systemd.js';
import { createRegistryClient } from './registry/client.js';
import { loadCredentialStore, type CredentialStore } from './registry/credentials.js';
import { ociPlatform } from './registry/platform.js';
import { loadRegistryTls, type RegistryTls } from './registry/tls.js';
import { parseImageReference } from '../shared/image-ref.js';
import { FileDrainStateStore } from './drain/state.js';
import { FileUpdateJournal } from './update/state-file.js';
import { recordWorkerMetrics } from './worker/events.js';

export { loadAgentConfig };

const usage = `usage: baton agent --config FILE

Runs the agent on a Docker host: keeps the declared services running and rolls them
to new image digests one lease at a time. Settings come from FILE (YAML or JSON) and
BATON_* environment variables.`;

function readSecretFile(path: string, field: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (error) {
    throw new ConfigError(path, [{ path: field, message: `cannot read: ${(error as Error).message}` }]);
  }
}

export async function runAgent(argv: string[], environment: NodeJS.ProcessEnv): Promise<number> {
  const args = parseDaemonArgs(argv, usage);
  if (!args.run) return args.exitCode;
  const { configPath } = args;

  let startup: Exclude<StartupConfig, { kind: 'invalid' }>;
  let config: AgentConfig;
  let token: string | undefined;
  let credentials: CredentialStore;
  let registryTls: RegistryTls | undefined;
  try {
    // An invalid file falls back to the last known good copy when there is one (agent/config/startup.ts).
    const decided = await decideStartupConfig({ configPath, environment, files: fileStartupFiles, nowMs: Date.now(), batonVersion });
    if (decided.kind === 'invalid') {
      process.stderr.write(`baton agent: ${decided.error.message}\n${decided.notes.map((note) => `baton agent: ${note}\n`).join('')}`);
      return ExitCode.config;
    }
    startup = decided;
    config = decided.config;
    token = config.coordinator.token ?? (config.coordinator.tokenFile ? readSecretFile(config.coordinator.tokenFile, 'coordinator.tokenFile') : undefined);
    credentials = await loadCredentialStore({
      ...(config.registry.dockerConfigPath !== undefined ? { dockerConfigPath: config.registry.dockerConfigPath } : {}),
      ...(config.registry.username !== undefined ? { username: config.registry.username } : {}),
      ...(config.registry.passwordFile !== undefined ? { passwordFile: config.registry.passwordFile } : {}),
      // A username and password go only to the registries the services' images live in.
      registries: config.services.map((service) => parseImageReference(service.image).registry),
    });
    registryTls = await loadRegistryTls(config.registry.tls);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`baton agent: ${error.message}\n`);
      return ExitCode.config;
    }
    throw error;
  }

  const logger = createLogger({ name: 'agent', level: config.logLevel }).child({ node: config.nodeId });
  await recordStartupConfig(startup, { store: fileLastKnownGoodStore, logger, stderr: (text) => process.stderr.write(text) });
  const clock = systemClock;
  const registry = createRegistryClient({
    timeoutMs: config.registry.requestTimeoutMs,
    credentials,
    platform: ociPlatform(process.platform, process.arch),
    insecureRegistries: config.registry.insecureRegistries,
    ...(registryTls === undefined ? {} : { tls: registryTls }),
    logger,
    clock,
  });
  const runtime = createDockerRuntime({
    socketPath: config.docker.socketPath,
    timeoutMs: config.docker.requestTimeoutMs,
    logger,
    authconfig: (imageByDigest) => {
      const registryHost = parseImageReference(imageByDigest).registry;
      const found = credentials.lookup(registryHost);
      return found ? { username: found.username, password: found.password, serveraddress: registryHost } : undefined;
    },
  });
  // prom-client is loaded at the first scrape of /metrics (agent/lazy-metrics.ts).
  const metrics = createLazyAgentMetrics({ nodeId: config.nodeId, version: batonVersion, processMetrics: true, configValid: startup.kind === 'valid' });
  // Socket activation (systemd/baton-agent.socket): the first socket passed is the readiness endpoint's.
  const inherited = inheritedSockets(environment, process.pid);
  unsetListenEnvironment(environment);
  if (inherited !== undefined && inherited.fds.length > 1) {
    logger.warn({ fds: inherited.fds, names: inherited.names }, 'systemd passed more than one socket; serving readiness on the first');
  }
  const healthProbe = createHttpHealthProbe();
  const board = createReadinessBoard({
    services: config.services.map((service) => service.containerName),
    probe: liveProbes({ runtime, healthProbe, clock, engineTimeoutMs: config.readiness.engineTimeoutMs }, config.services),
    clock,
    cacheMs: config.readiness.probeCacheMs,
    logger,
  });
  const readiness = createReadinessServer({
    listen: config.readiness.listen,
    ...(inherited?.fds[0] !== undefined ? { inheritedFd: inherited.fds[0] } : {}),
    logger,
    board,
    metrics: () => metrics.render(),
  });
  const coordinator = createCoordinatorClient({
    urls: config.coordinator.urls,
    ...(token !== undefined ? { token } : {}),
    timeoutMs: config.coordinator.requestTimeoutMs,
    logger,
  });
  const agent = new Agent({
    config,
    runtime,
    registry,
    coordinator,
    readiness: board,
    healthProbe,
    hooks: createShellHookRunner({ logger, baseEnvironment: { PATH: environment.PATH ?? '/usr/bin:/bin' } }),
    journal: new FileUpdateJournal(config.stateDir, logger),
    drains: new FileDrainStateStore(config.stateDir, logger),
    clock,
    random: systemRandom,
    logger,
    agentVersion: batonVersion,
    onEvent: (event) => recordWorkerMetrics(metrics, event),
    ...(startup.kind === 'fallback' ? { configProblem: startup.problem } : {}),
  });
  metrics.watchSteps(() => agent.steps());

  // Signals are handled from here on: a SIGTERM during the start-up reconcile waits for it, and
  // one during an update lets the update finish or roll back and hand its lease back first.
  let stopRequested: ((signal: NodeJS.Signals) => void) | undefined;
  const stopSignal = new Promise<NodeJS.Signals>((resolve) => (stopRequested = resolve));
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn({ signal }, 'already stopping: waiting for the step in flight (SIGKILL to force)');
      return;
    }
    stopping = true;
    logger.info({ signal }, 'agent stopping: finishing or rolling back the step in flight');
    stopRequested?.(signal);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  const closeAll = async (): Promise<void> => {
    await agent.stop();
    await readiness.stop();
    await registry.close();
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  };

  let bound: { address: string; port: number };
  try {
    // Hold services whose update a crash cut short before the first request is answered.
    await agent.prepare();
    bound = await readiness.start();
  } catch (error) {
    logger.fatal({ err: error }, 'cannot start the readiness endpoint');
    process.stderr.write(`baton agent: ${(error as Error).message}\n`);
    await closeAll();
    return ExitCode.unavailable;
  }
  logger.info(
    {
      readiness: inherited === undefined ? `${bound.address}:${bound.port}` : `socket from systemd (fd ${inherited.fds[0]}): ${bound.address}:${bound.port}`,
      services: config.services.length,
      version: batonVersion,
    },
    'agent starting',
  );

  let exitCode: number = ExitCode.ok;
  const started = agent.start().then(
    () => {
      if (!stopping) logger.info('agent running');
    },
    (error: unknown) => {
      logger.fatal({ err: error }, 'agent failed to start');
      exitCode = ExitCode.software;
      onSignal('SIGTERM');
    },
  );
  await stopSignal;
  await started;
  await closeAll();
  logger.info({ exitCode }, 'agent stopped');
  return exitCode;
}
