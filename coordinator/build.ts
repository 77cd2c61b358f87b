import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Clock } from '../shared/clock.js';
import { parseHostPort, type HostPort } from '../shared/host-port.js';
import type { CoordinatorConfig } from '../shared/config/coordinator.js';
import type { Logger } from '../shared/logger.js';
import type { RandomSource } from '../shared/random.js';
import { createHttpServer, type CoordinatorHttpServer } from './http/server.js';
import { FleetAnalytics } from './metrics/analytics.js';
import { createCoordinatorMetrics } from './metrics/prometheus.js';
import { startNotifier, type Notifier } from './notifications/notifier.js';
import { CoordinatorService } from './service/service.js';
import { statusPage } from './status-page/routes.js';
import { openSqliteStore } from './store/sqlite.js';
import type { Store } from './store/store.js';
import { StoreUnwritableError, writeFailureOf } from './store/write-failure.js';

/** What the coordinator takes from the world; tests pass a manual clock, fixed ids and randomness, a store of their own. */
export interface CoordinatorDeps {
  clock: Clock;
  /** Jitter of webhook retries. */
  random: RandomSource;
  logger: Logger;
  /** New lease and rollout ids; crypto.randomUUID in production. */
  newId: () => string;
  /** Defaults to the SQLite file at `config.dataFile` (its folder is created). The coordinator closes it. */
  store?: Store;
}

/** Settings that are not in the config file. */
export interface CoordinatorTuning {
  /** Node.js process metrics (CPU, memory, event loop) in GET /metrics. */
  processMetrics?: boolean;
  heartbeatFlushIntervalMs?: number;
  expirySweepIntervalMs?: number;
  /** How often the status page's live feed sends a snapshot while someone listens. */
  snapshotIntervalMs?: number;
}

export type ListenAddress = HostPort;

export interface Coordinator {
  readonly config: CoordinatorConfig;
  readonly service: CoordinatorService;
  /** The fastify app, for `inject()` in tests. */
  readonly app: CoordinatorHttpServer;
  /** Undefined when no webhook is configured. */
  readonly notifier: Notifier | undefined;
  /** Listens on `config.listen` (or `address`) and resolves with the address bound (port 0 becomes a real port). */
  listen(address?: ListenAddress): Promise<ListenAddress>;
  /**
   * Stops taking requests, ends the live feeds, stops the sweeps and figures, gives queued
   * notifications `notificationGraceMs` to go out, writes unsaved heartbeats and closes the store.
   */
  close(options?: { notificationGraceMs?: number }): Promise<void>;
}


function openDefaultStore(config: CoordinatorConfig, logger: Logger): Store {
  const dataFile = resolve(config.dataFile);
  try {
    mkdirSync(dirname(dataFile), { recursive: true });
  } catch (error) {
    const reason = writeFailureOf(error);
    throw reason === undefined ? error : new StoreUnwritableError(dataFile, reason, { cause: error });
  }
  return openSqliteStore(dataFile, { logger });
}

/**
 * The whole coordinator, as main runs it: store, service and its sweeps, webhook notifier,
 * figures and metrics, the HTTP API and the status page beside it. Loads the stored state
 * before it resolves; serves nothing until `listen()`.
 */
export async function buildCoordinator(config: CoordinatorConfig, deps: CoordinatorDeps, tuning: CoordinatorTuning = {}): Promise<Coordinator> {
  const { clock, logger } = deps;
  const store = deps.store ?? openDefaultStore(config, logger);
  const service = new CoordinatorService({
    config,
    store,
    clock,
    logger,
    newId: deps.newId,
    ...(tuning.heartbeatFlushIntervalMs !== undefined ? { heartbeatFlushIntervalMs: tuning.heartbeatFlushIntervalMs } : {}),
    ...(tuning.expirySweepIntervalMs !== undefined ? { expirySweepIntervalMs: tuning.expirySweepIntervalMs } : {}),
  });
  await service.start();
  const notifications = startNotifier(service, config.notifications, { clock, random: deps.random, logger });
  const analytics = new FleetAnalytics(service, clock, logger.child({ component: 'status' }));
  const metrics = createCoordinatorMetrics({
    source: service,
    analytics,
    ...(notifications ? { notifier: notifications.notifier } : {}),
    ...(tuning.processMetrics !== undefined ? { processMetrics: tuning.processMetrics } : {}),
  });
  const app = createHttpServer({ service, auth: config.auth, logger, bodyLimitBytes: config.bodyLimitBytes });
  void app.register(statusPage, {
    service,
    auth: config.auth,
    logger,
    clock,
    analytics,
    metrics,
    ...(tuning.snapshotIntervalMs !== undefined ? { snapshotIntervalMs: tuning.snapshotIntervalMs } : {}),
  });

  let closing: Promise<void> | undefined;
  const close = async (graceMs: number | undefined): Promise<void> => {
    await app.close();
    metrics.stop();
    analytics.stop();
    await service.stop();
    await notifications?.stop(graceMs);
    await store.close();
  };

  return {
    config,
    service,
    app,
    notifier: notifications?.notifier,
    listen: async (address = parseHostPort(config.listen)) => {
      await app.listen(address);
      const bound = app.server.address();
      return { host: address.host, port: typeof bound === 'object' && bound !== null ? bound.port : address.port };
    },
    close: (options = {}) => (closing ??= close(options.notificationGraceMs)),
  };
}
